#include "platform/linux/conntrack_linux.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"

namespace nodeward::platform {
namespace {

struct HandleClose {
  void operator()(nfct_handle* h) const { nfct_close(h); }
};
using Handle = std::unique_ptr<nfct_handle, HandleClose>;
struct CtFree {
  void operator()(nf_conntrack* c) const { nfct_destroy(c); }
};

absl::uint128 FromBytes(const uint8_t* p, size_t n) {
  absl::uint128 v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}
void ToBytes(absl::uint128 v, uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) p[n - 1 - i] = static_cast<uint8_t>(v >> (8 * i));
}

// This namespace's own addresses, as (ipv6, address).
std::set<std::pair<bool, absl::uint128>> LocalAddresses() {
  std::set<std::pair<bool, absl::uint128>> out;
  ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return out;
  for (ifaddrs* i = ifa; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      out.insert({false, FromBytes(reinterpret_cast<const uint8_t*>(&a->sin_addr), 4)});
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      out.insert({true, FromBytes(a->sin6_addr.s6_addr, 16)});
    }
  }
  freeifaddrs(ifa);
  return out;
}

bool Loopback(bool ipv6, absl::uint128 a) {
  return ipv6 ? a == 1 : (a >> 24) == 127;
}

struct DumpState {
  std::vector<ConnEntry>* out;
  const std::set<std::pair<bool, absl::uint128>>* local;
};

int OnEntry(enum nf_conntrack_msg_type, struct nf_conntrack* ct, void* data) {
  auto* st = static_cast<DumpState*>(data);
  const uint8_t l4 = nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO);
  if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP) return NFCT_CB_CONTINUE;
  ConnEntry e;
  e.protocol = l4;
  e.ipv6 = nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO) == AF_INET6;
  if (e.ipv6) {
    e.src = FromBytes(static_cast<const uint8_t*>(nfct_get_attr(ct, ATTR_ORIG_IPV6_SRC)), 16);
    e.dst = FromBytes(static_cast<const uint8_t*>(nfct_get_attr(ct, ATTR_ORIG_IPV6_DST)), 16);
  } else {
    e.src = FromBytes(static_cast<const uint8_t*>(nfct_get_attr(ct, ATTR_ORIG_IPV4_SRC)), 4);
    e.dst = FromBytes(static_cast<const uint8_t*>(nfct_get_attr(ct, ATTR_ORIG_IPV4_DST)), 4);
  }
  e.sport = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC));
  e.dport = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST));
  e.inbound = st->local->count({e.ipv6, e.dst}) != 0 && st->local->count({e.ipv6, e.src}) == 0 &&
              !Loopback(e.ipv6, e.src);
  st->out->push_back(e);
  return NFCT_CB_CONTINUE;
}

}  // namespace

absl::StatusOr<std::vector<ConnEntry>> LinuxConntrack::List() {
  Handle h(nfct_open(CONNTRACK, 0));
  if (!h) return absl::ErrnoToStatus(errno, "conntrack: open ctnetlink");
  const auto local = LocalAddresses();
  std::vector<ConnEntry> out;
  DumpState st{&out, &local};
  nfct_callback_register(h.get(), NFCT_T_ALL, OnEntry, &st);
  for (uint32_t family : {AF_INET, AF_INET6}) {
    if (nfct_query(h.get(), NFCT_Q_DUMP, &family) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("conntrack: dump the ",
                                                     family == AF_INET ? "IPv4" : "IPv6",
                                                     " table"));
    }
  }
  return out;
}

absl::Status LinuxConntrack::Delete(const ConnEntry& e) {
  Handle h(nfct_open(CONNTRACK, 0));
  if (!h) return absl::ErrnoToStatus(errno, "conntrack: open ctnetlink");
  std::unique_ptr<nf_conntrack, CtFree> ct(nfct_new());
  if (!ct) return absl::ResourceExhaustedError("conntrack: allocate an entry");
  nfct_set_attr_u8(ct.get(), ATTR_L3PROTO, e.ipv6 ? AF_INET6 : AF_INET);
  if (e.ipv6) {
    uint8_t src[16], dst[16];
    ToBytes(e.src, src, 16);
    ToBytes(e.dst, dst, 16);
    nfct_set_attr(ct.get(), ATTR_IPV6_SRC, src);
    nfct_set_attr(ct.get(), ATTR_IPV6_DST, dst);
  } else {
    uint8_t src[4], dst[4];
    ToBytes(e.src, src, 4);
    ToBytes(e.dst, dst, 4);
    uint32_t s, d;
    std::memcpy(&s, src, 4);
    std::memcpy(&d, dst, 4);
    nfct_set_attr_u32(ct.get(), ATTR_IPV4_SRC, s);
    nfct_set_attr_u32(ct.get(), ATTR_IPV4_DST, d);
  }
  nfct_set_attr_u8(ct.get(), ATTR_L4PROTO, e.protocol);
  nfct_set_attr_u16(ct.get(), ATTR_PORT_SRC, htons(e.sport));
  nfct_set_attr_u16(ct.get(), ATTR_PORT_DST, htons(e.dport));
  if (nfct_query(h.get(), NFCT_Q_DESTROY, ct.get()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, "conntrack: delete an entry");
  }
  return absl::OkStatus();
}

}  // namespace nodeward::platform
