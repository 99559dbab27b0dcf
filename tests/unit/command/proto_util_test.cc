// Unknown fields and enum values are critical everywhere in a message.
#include "agent/common/proto_util.h"

#include "gtest/gtest.h"
#include "nodeward/v1/agent.pb.h"
#include "tests/common/status_matchers.h"

namespace nodeward {
namespace {

using testing::IsOk;
using testing::StatusIs;

TEST(CheckNoUnknownsTest, AcceptsKnownContent) {
  nodeward::v1::HealthReport r;
  r.set_state(nodeward::v1::HealthReport::SERVING);
  r.add_conditions()->set_message("x");
  EXPECT_THAT(CheckNoUnknowns(r), IsOk());
}

TEST(CheckNoUnknownsTest, RejectsUnknownEnumValue) {
  nodeward::v1::HealthReport r;
  // Field 4 (state) = 77: an enum value this build does not know. Parsed from
  // the wire as an open proto3 enum, it lands in the field, not in unknowns.
  ASSERT_TRUE(r.ParseFromString(std::string("\x20\x4d", 2)));
  EXPECT_THAT(CheckNoUnknowns(r), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CheckNoUnknownsTest, RejectsUnknownFieldInNestedMessage) {
  nodeward::v1::CommandResult r;
  r.mutable_ping()->GetReflection()->MutableUnknownFields(r.mutable_ping())->AddVarint(99, 1);
  absl::Status s = CheckNoUnknowns(r);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(s.message().find("ping"), absl::string_view::npos) << s;
}

TEST(ParseJsonTest, RejectsUnknownJsonFields) {
  nodeward::v1::WatchHealthRequest r;
  EXPECT_THAT(ParseJson(R"({"max_reports": 3})", &r, "request"), IsOk());
  EXPECT_EQ(r.max_reports(), 3u);
  EXPECT_THAT(ParseJson(R"({"max_reports": 3, "extra": 1})", &r, "request"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace nodeward
