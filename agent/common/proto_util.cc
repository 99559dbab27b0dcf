#include "agent/common/proto_util.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

namespace nodeward {

absl::StatusOr<bool> ReadRecordFile(platform::FileSystem* fs, const std::string& path,
                                    google::protobuf::Message* message, absl::string_view what) {
  absl::StatusOr<std::string> raw = fs->ReadFile(path);
  if (absl::IsNotFound(raw.status())) return false;
  if (!raw.ok()) return raw.status();
  if (!message->ParseFromString(*raw)) {
    message->Clear();
    return absl::DataLossError(absl::StrCat(what, " ", path, " is corrupt"));
  }
  return true;
}
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

absl::Status Check(const Message& m, const std::string& path) {
  const Reflection* r = m.GetReflection();
  if (!r->GetUnknownFields(m).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown field in ", path.empty() ? m.GetTypeName() : path));
  }
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    std::string name = path.empty() ? f->name() : absl::StrCat(path, ".", f->name());
    if (f->type() == FieldDescriptor::TYPE_ENUM) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) {
          int v = r->GetRepeatedEnumValue(m, f, i);
          if (f->enum_type()->FindValueByNumber(v) == nullptr) {
            return absl::InvalidArgumentError(absl::StrCat("unknown enum value ", v, " in ", name));
          }
        }
      } else {
        int v = r->GetEnumValue(m, f);
        if (f->enum_type()->FindValueByNumber(v) == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat("unknown enum value ", v, " in ", name));
        }
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) {
          absl::Status s = Check(r->GetRepeatedMessage(m, f, i), absl::StrCat(name, "[", i, "]"));
          if (!s.ok()) return s;
        }
      } else {
        absl::Status s = Check(r->GetMessage(m, f), name);
        if (!s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckNoUnknowns(const Message& message) { return Check(message, ""); }

absl::Status ParseJson(absl::string_view json, Message* message, absl::string_view what) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, opts);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("parse ", what, ": ", std::string(s.message().data(), s.message().size())));
  }
  return absl::OkStatus();
}

std::string ToJsonLine(const Message& message) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, opts);
  return out;
}

std::string ToJsonPretty(const Message& message) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.add_whitespace = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, opts);
  return out;
}

}  // namespace nodeward
