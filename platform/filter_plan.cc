#include "platform/filter_plan.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nodeward::platform {
namespace {

using Entry = std::pair<FilterInterval, std::string>;  // interval, map target ("" for sets)

std::vector<Entry> Entries(const FilterSet& s) {
  std::vector<Entry> out;
  out.reserve(s.intervals.size());
  for (size_t i = 0; i < s.intervals.size(); ++i) {
    out.emplace_back(s.intervals[i], s.is_map() ? s.targets[i] : std::string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

FilterChange::Elements ToElements(const FilterSet& s, const std::vector<Entry>& entries) {
  FilterChange::Elements e;
  e.set = s.name;
  e.ipv6 = s.ipv6;
  for (const Entry& x : entries) {
    e.intervals.push_back(x.first);
    if (s.is_map()) e.targets.push_back(x.second);
  }
  return e;
}

FilterChange FullReplace(const FilterRuleset& desired, bool by_reference) {
  FilterChange c;
  c.replace_table = true;
  if (by_reference) {
    for (const FilterSet& s : desired.sets) c.add_set_refs.push_back(&s);
  } else {
    c.add_sets = desired.sets;
  }
  c.add_chains = desired.chains;
  c.base_rules = desired.rules;
  return c;
}

template <typename T>
std::unordered_map<std::string_view, const T*> ByName(const std::vector<T>& v) {
  std::unordered_map<std::string_view, const T*> out;
  out.reserve(v.size());
  for (const T& x : v) out[x.name] = &x;
  return out;
}

// Equal interval lists, compared as raw memory (FilterInterval is two
// 128-bit integers, no padding): the common case of an unchanged shard.
bool SameIntervals(const std::vector<FilterInterval>& a, const std::vector<FilterInterval>& b) {
  static_assert(sizeof(FilterInterval) == 2 * sizeof(absl::uint128), "no padding");
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(FilterInterval)) == 0);
}

}  // namespace

uint64_t SetDigest(const FilterSet& s) {
  const absl::string_view bytes(reinterpret_cast<const char*>(s.intervals.data()),
                                s.intervals.size() * sizeof(FilterInterval));
  return static_cast<uint64_t>(absl::HashOf(s.ipv6, bytes, s.targets)) | 1;
}

FilterChange PlanChange(const KernelTable& current, const FilterRuleset& desired,
                        bool by_reference) {
  if (!current.exists || !current.structure_ok) return FullReplace(desired, by_reference);
  const FilterRuleset& cur = current.ruleset;
  FilterChange c;
  const auto cur_sets = ByName(cur.sets);
  const auto want_sets = ByName(desired.sets);
  for (const FilterSet& s : desired.sets) {
    auto it = cur_sets.find(s.name);
    if (it == cur_sets.end()) {
      if (by_reference) {
        c.add_set_refs.push_back(&s);
      } else {
        c.add_sets.push_back(s);
      }
      continue;
    }
    const FilterSet& k = *it->second;
    if (k.ipv6 != s.ipv6 || k.is_map() != s.is_map()) {
      // Same name, other type (someone else's doing): a set cannot change
      // type in place, so replace the table.
      if (!(k.intervals.empty() && s.intervals.empty())) return FullReplace(desired, by_reference);
    }
    if (k.digest != 0 && k.digest == s.digest && k.ipv6 == s.ipv6 &&
        k.intervals.size() == s.intervals.size() && k.targets.size() == s.targets.size()) {
      continue;  // the common case: an unchanged shard, known by its digest
    }
    if (SameIntervals(k.intervals, s.intervals) && k.targets == s.targets) continue;
    const std::vector<Entry> have = Entries(k), want = Entries(s);
    std::vector<Entry> del, add;
    std::set_difference(have.begin(), have.end(), want.begin(), want.end(), std::back_inserter(del));
    std::set_difference(want.begin(), want.end(), have.begin(), have.end(), std::back_inserter(add));
    if (!del.empty()) c.delete_elements.push_back(ToElements(k, del));
    if (!add.empty()) c.add_elements.push_back(ToElements(s, add));
  }
  for (const FilterSet& k : cur.sets) {
    if (want_sets.count(k.name) == 0) (k.is_map() ? c.delete_maps : c.delete_sets).push_back(k.name);
  }
  const auto cur_chains = ByName(cur.chains);
  const auto want_chains = ByName(desired.chains);
  for (const FilterChain& ch : desired.chains) {
    auto it = cur_chains.find(ch.name);
    if (it == cur_chains.end()) {
      c.add_chains.push_back(ch);
    } else if (!(it->second->rules == ch.rules)) {
      c.rewrite_chains.push_back(ch);
    }
  }
  for (const FilterChain& k : cur.chains) {
    if (want_chains.count(k.name) == 0) c.delete_chains.push_back(k.name);
  }
  if (!(cur.rules == desired.rules)) c.base_rules = desired.rules;
  return c;
}

namespace {

bool Overlaps(const std::vector<FilterInterval>& v, const FilterInterval& x) {
  for (const FilterInterval& i : v) {
    if (!(x.last < i.first || i.last < x.first)) return true;
  }
  return false;
}

bool References(const FilterRule& r, const std::string& name) {
  return r.source_set == name || r.source_map == name;
}

}  // namespace

absl::Status ApplyChange(const FilterChange& change, KernelTable* table) {
  KernelTable t = *table;  // all or nothing
  if (change.replace_table) {
    t.exists = true;
    t.structure_ok = true;
    t.ruleset = FilterRuleset();
  } else if (change.create_table || !t.exists) {
    if (!t.exists) return absl::NotFoundError("table does not exist");
  }
  FilterRuleset& r = t.ruleset;
  auto find_set = [&](const std::string& n) -> FilterSet* {
    for (FilterSet& s : r.sets) {
      if (s.name == n) return &s;
    }
    return nullptr;
  };
  auto find_chain = [&](const std::string& n) -> FilterChain* {
    for (FilterChain& ch : r.chains) {
      if (ch.name == n) return &ch;
    }
    return nullptr;
  };
  auto check_refs = [&](const std::vector<FilterRule>& rules) -> absl::Status {
    for (const FilterRule& x : rules) {
      for (const std::string* n : {&x.source_set, &x.source_map}) {
        if (!n->empty() && find_set(*n) == nullptr) {
          return absl::NotFoundError(absl::StrCat("rule refers to missing set ", *n));
        }
      }
    }
    return absl::OkStatus();
  };
  for (const FilterSet* sp : change.AllAddSets()) {
    const FilterSet& s = *sp;
    if (find_set(s.name) != nullptr) return absl::AlreadyExistsError(absl::StrCat("set ", s.name));
    std::vector<FilterInterval> sorted = s.intervals;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 1; i < sorted.size(); ++i) {
      if (!(sorted[i - 1].last < sorted[i].first)) {
        return absl::AlreadyExistsError(absl::StrCat("overlapping elements in ", s.name));
      }
    }
    r.sets.push_back(s);
  }
  for (const FilterChain& ch : change.add_chains) {
    if (find_chain(ch.name) != nullptr) {
      return absl::AlreadyExistsError(absl::StrCat("chain ", ch.name));
    }
    r.chains.push_back(ch);
  }
  for (const FilterChain& ch : change.add_chains) {
    if (absl::Status s = check_refs(ch.rules); !s.ok()) return s;
  }
  for (const auto& e : change.delete_elements) {
    FilterSet* s = find_set(e.set);
    if (s == nullptr) return absl::NotFoundError(absl::StrCat("set ", e.set));
    for (const FilterInterval& iv : e.intervals) {
      auto it = std::find(s->intervals.begin(), s->intervals.end(), iv);
      if (it == s->intervals.end()) {
        return absl::NotFoundError(absl::StrCat("element not in set ", e.set));
      }
      const size_t idx = static_cast<size_t>(it - s->intervals.begin());
      s->digest = 0;
      s->intervals.erase(it);
      if (!s->targets.empty()) s->targets.erase(s->targets.begin() + static_cast<long>(idx));
    }
  }
  for (const auto& e : change.add_elements) {
    FilterSet* s = find_set(e.set);
    if (s == nullptr) return absl::NotFoundError(absl::StrCat("set ", e.set));
    for (size_t i = 0; i < e.intervals.size(); ++i) {
      if (Overlaps(s->intervals, e.intervals[i])) {
        return absl::AlreadyExistsError(absl::StrCat("element overlaps in set ", e.set));
      }
      if (s->is_map() || !e.targets.empty()) {
        if (e.targets.size() != e.intervals.size() || find_chain(e.targets[i]) == nullptr) {
          return absl::NotFoundError(absl::StrCat("map element jumps to a missing chain in ", e.set));
        }
        s->targets.push_back(e.targets[i]);
      }
      s->intervals.push_back(e.intervals[i]);
    }
    // Keep the model sorted as the kernel would list it.
    s->digest = 0;
    std::vector<Entry> sorted = Entries(*s);
    s->intervals.clear();
    s->targets.clear();
    for (const Entry& x : sorted) {
      s->intervals.push_back(x.first);
      if (!x.second.empty()) s->targets.push_back(x.second);
    }
  }
  if (change.base_rules.has_value()) {
    if (absl::Status s = check_refs(*change.base_rules); !s.ok()) return s;
    r.rules = *change.base_rules;
  }
  for (const FilterChain& ch : change.rewrite_chains) {
    FilterChain* k = find_chain(ch.name);
    if (k == nullptr) return absl::NotFoundError(absl::StrCat("chain ", ch.name));
    if (absl::Status s = check_refs(ch.rules); !s.ok()) return s;
    k->rules = ch.rules;
  }
  auto delete_set = [&](const std::string& n) -> absl::Status {
    if (find_set(n) == nullptr) return absl::NotFoundError(absl::StrCat("set ", n));
    auto used = [&](const std::vector<FilterRule>& rules) {
      return std::any_of(rules.begin(), rules.end(),
                         [&](const FilterRule& x) { return References(x, n); });
    };
    bool busy = used(r.rules);
    for (const FilterChain& ch : r.chains) busy = busy || used(ch.rules);
    if (busy) return absl::FailedPreconditionError(absl::StrCat("set ", n, " is still in use"));
    r.sets.erase(std::remove_if(r.sets.begin(), r.sets.end(),
                                [&](const FilterSet& s) { return s.name == n; }),
                 r.sets.end());
    return absl::OkStatus();
  };
  for (const std::string& n : change.delete_maps) {
    if (absl::Status s = delete_set(n); !s.ok()) return s;
  }
  for (const std::string& n : change.delete_chains) {
    if (find_chain(n) == nullptr) return absl::NotFoundError(absl::StrCat("chain ", n));
    for (const FilterSet& s : r.sets) {
      if (std::find(s.targets.begin(), s.targets.end(), n) != s.targets.end()) {
        return absl::FailedPreconditionError(absl::StrCat("chain ", n, " is still a map target"));
      }
    }
    r.chains.erase(std::remove_if(r.chains.begin(), r.chains.end(),
                                  [&](const FilterChain& ch) { return ch.name == n; }),
                   r.chains.end());
  }
  for (const std::string& n : change.delete_sets) {
    if (absl::Status s = delete_set(n); !s.ok()) return s;
  }
  *table = std::move(t);
  return absl::OkStatus();
}

std::string Describe(const FilterChange& c) {
  if (c.empty()) return "no change";
  std::vector<std::string> parts;
  if (c.replace_table) parts.push_back("table replaced");
  size_t add = 0, del = 0;
  for (const auto& e : c.add_elements) add += e.intervals.size();
  for (const auto& e : c.delete_elements) del += e.intervals.size();
  if (!c.replace_table && !c.AllAddSets().empty()) {
    parts.push_back(absl::StrCat(c.AllAddSets().size(), " sets added"));
  }
  if (add + del > 0) {
    std::set<std::string> touched;
    for (const auto& e : c.add_elements) touched.insert(e.set);
    for (const auto& e : c.delete_elements) touched.insert(e.set);
    parts.push_back(absl::StrCat("+", add, " -", del, " elements in ", touched.size(), " sets"));
  }
  if (!c.replace_table && !c.add_chains.empty()) {
    parts.push_back(absl::StrCat(c.add_chains.size(), " chains added"));
  }
  if (!c.replace_table && c.base_rules.has_value()) parts.push_back("input chain rewritten");
  if (!c.rewrite_chains.empty()) {
    parts.push_back(absl::StrCat(c.rewrite_chains.size(), " chains rewritten"));
  }
  if (!c.delete_chains.empty()) {
    parts.push_back(absl::StrCat(c.delete_chains.size(), " chains removed"));
  }
  if (!c.delete_sets.empty() || !c.delete_maps.empty()) {
    parts.push_back(absl::StrCat(c.delete_sets.size() + c.delete_maps.size(), " sets removed"));
  }
  return absl::StrJoin(parts, ", ");
}

ElementCounts CountElements(const FilterRuleset& r) {
  ElementCounts n;
  for (const FilterSet& s : r.sets) {
    if (s.is_map()) continue;
    (s.ipv6 ? n.ipv6 : n.ipv4) += s.intervals.size();
  }
  return n;
}

namespace {

void PutU128(std::string* out, absl::uint128 v) {
  for (int i = 15; i >= 0; --i) out->push_back(static_cast<char>(static_cast<uint8_t>(v >> (8 * i))));
}
void PutStr(std::string* out, const std::string& s) {
  absl::StrAppend(out, s.size(), ":", s);
}
void PutRule(std::string* out, const FilterRule& r) {
  absl::StrAppend(out, "R", static_cast<int>(r.kind), ",", static_cast<int>(r.icmp_type), ",",
                  r.ipv6 ? 1 : 0, ",", static_cast<int>(r.protocol), ",");
  PutStr(out, r.source_set);
  PutStr(out, r.source_map);
  if (r.ports.has_value()) absl::StrAppend(out, "p", r.ports->first, "-", r.ports->last);
  PutStr(out, r.comment);
}

}  // namespace

void Canonical(const FilterRuleset& r, const std::function<void(absl::string_view)>& sink) {
  std::string out = "nodeward-ruleset-1;";
  // Only a table with flags adds this: every hash of a flagless table stays
  // as it was.
  if (r.table_flags != 0) absl::StrAppend(&out, "F", r.table_flags, ";");
  for (const FilterRule& x : r.rules) PutRule(&out, x);
  std::vector<const FilterChain*> chains;
  for (const FilterChain& c : r.chains) chains.push_back(&c);
  std::sort(chains.begin(), chains.end(),
            [](const FilterChain* a, const FilterChain* b) { return a->name < b->name; });
  for (const FilterChain* c : chains) {
    out += "C";
    PutStr(&out, c->name);
    for (const FilterRule& x : c->rules) PutRule(&out, x);
  }
  std::vector<const FilterSet*> sets;
  for (const FilterSet& s : r.sets) sets.push_back(&s);
  std::sort(sets.begin(), sets.end(),
            [](const FilterSet* a, const FilterSet* b) { return a->name < b->name; });
  for (const FilterSet* s : sets) {
    out += s->ipv6 ? "S6" : "S4";
    PutStr(&out, s->name);
    if (s->is_map()) {
      for (const Entry& e : Entries(*s)) {
        PutU128(&out, e.first.first);
        PutU128(&out, e.first.last);
        PutStr(&out, e.second);
      }
    } else {
      for (const FilterInterval& i : s->intervals) {  // kept sorted
        PutU128(&out, i.first);
        PutU128(&out, i.last);
        if (out.size() > 65536) {
          sink(out);
          out.clear();
        }
      }
    }
    out += ";";
  }
  sink(out);
}

}  // namespace nodeward::platform
