#ifndef NODEWARD_TESTS_COMMON_VOLUME_COMMANDS_H_
#define NODEWARD_TESTS_COMMON_VOLUME_COMMANDS_H_

#include <string>

#include "agent/command/verifier.h"

namespace nodeward::testing {

// A verified SetupVolume for an ext4 volume with noatime.
inline VerifiedCommand SetupCmd(const std::string& id, const std::string& device,
                                const std::string& mapper, const std::string& mount,
                                bool destroy = false) {
  VerifiedCommand v;
  v.command_type = "setup_volume";
  auto* s = v.command.mutable_setup_volume();
  s->set_volume_id(id);
  s->set_device(device);
  s->set_mapper_name(mapper);
  s->set_filesystem(nodeward::v1::FILESYSTEM_EXT4);
  s->set_mount_point(mount);
  s->add_mount_options("noatime");
  s->set_destroy_existing_data(destroy);
  return v;
}

}  // namespace nodeward::testing

#endif  // NODEWARD_TESTS_COMMON_VOLUME_COMMANDS_H_
