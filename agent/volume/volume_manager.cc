#include "agent/volume/volume_manager.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/common/reason.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/common/secure_buffer.h"
#include "agent/common/proto_util.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"
#include "google/protobuf/util/message_differencer.h"

namespace nodeward::volume {
namespace {

using nodeward::v1::SetupVolume;
using nodeward::v1::VolumeRecord;
using nodeward::v1::VolumeStatus;

constexpr size_t kVolumeKeyBytes = 64;  // 512-bit key: two AES-256 keys for XTS

absl::Status Bad(absl::string_view field, absl::string_view why,
                 absl::string_view reason_code = reason::kVolumeSpecInvalid) {
  return WithReason(absl::InvalidArgumentError(absl::StrCat("setup_volume ", field, ": ", why)),
                    reason_code);
}

// A refusal of the volume as the node holds it: FAILED_PRECONDITION, reason.
absl::Status Refuse(absl::string_view reason_code, absl::string_view message) {
  return WithReason(absl::FailedPreconditionError(message), reason_code);
}

bool Matches(absl::string_view s, size_t max, bool upper, absl::string_view extra) {
  if (s.empty() || s.size() > max) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       (upper && c >= 'A' && c <= 'Z');
    if (alnum) continue;
    if (i > 0 && extra.find(c) != absl::string_view::npos) continue;
    return false;
  }
  return true;
}

// Absolute, no "." or ".." component, no empty component, no trailing "/".
bool Normalised(absl::string_view p) {
  if (p.size() < 2 || p[0] != '/' || p.back() == '/') return false;
  for (absl::string_view part : absl::StrSplit(p.substr(1), '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

bool Under(absl::string_view path, absl::string_view root) {
  return absl::StartsWith(path, root) && path.size() > root.size() && path[root.size()] == '/';
}

const std::set<std::string>& AllowedOptions() {
  static const auto* kOptions =
      new std::set<std::string>{"noatime", "relatime", "nodiratime", "lazytime", "noexec"};
  return *kOptions;
}

platform::FsType FsOf(const SetupVolume& c) {
  return c.filesystem() == nodeward::v1::FILESYSTEM_XFS ? platform::FsType::kXfs
                                                        : platform::FsType::kExt4;
}

std::string FsName(const SetupVolume& c) {
  return c.filesystem() == nodeward::v1::FILESYSTEM_XFS ? "xfs" : "ext4";
}

std::string MountOptions(const SetupVolume& c) {
  std::vector<std::string> o = {"nodev", "nosuid"};
  for (const auto& x : c.mount_options()) o.push_back(x);
  return absl::StrJoin(o, ",");
}

platform::CryptParams Params(const SetupVolume& c) {
  platform::CryptParams p;
  p.allow_discards = c.allow_discards();
  return p;
}

// The fields that make two SetupVolumes the same volume (the destroy flag
// is not part of it: resending with it for an active volume is still a
// no-op).
bool SameSpec(const SetupVolume& a, const SetupVolume& b) {
  SetupVolume x = a, y = b;
  x.set_destroy_existing_data(false);
  y.set_destroy_existing_data(false);
  return google::protobuf::util::MessageDifferencer::Equals(x, y);
}

}  // namespace

absl::Status ValidateSetupVolume(const SetupVolume& c,
                                 const std::vector<std::string>& allowed_mount_roots) {
  if (!Matches(c.volume_id(), 63, false, "-")) {
    return Bad("volume_id", "must be [a-z0-9][a-z0-9-]{0,62}");
  }
  const std::string& d = c.device();
  const bool by_id = absl::StartsWith(d, "/dev/disk/by-id/") && d.size() > 16 &&
                     d.find('/', 16) == std::string::npos && d.find("..") == std::string::npos;
  const bool serial = absl::StartsWith(d, "serial:") && d.size() > 7 && d.size() <= 128 &&
                      Matches(d.substr(7), 120, true, "-_.:");
  if (!by_id && !serial) {
    return Bad("device", absl::StrCat("'", d.substr(0, 80),
                                      "' is not a stable identifier (use /dev/disk/by-id/<id> "
                                      "or serial:<serial>; a bare device path can change "
                                      "between boots)"));
  }
  if (!Matches(c.mapper_name(), 48, true, "_-")) {
    return Bad("mapper_name",
               absl::StrCat("'", c.mapper_name().substr(0, 80),
                            "' must be [A-Za-z0-9][A-Za-z0-9_-]{0,47}"));
  }
  if (c.filesystem() != nodeward::v1::FILESYSTEM_EXT4 &&
      c.filesystem() != nodeward::v1::FILESYSTEM_XFS) {
    return Bad("filesystem", "must be FILESYSTEM_EXT4 or FILESYSTEM_XFS");
  }
  const std::string& m = c.mount_point();
  if (m.size() > 255 || !Normalised(m)) {
    return Bad("mount_point", absl::StrCat("'", m.substr(0, 80),
                                           "' must be an absolute, normalised path"));
  }
  bool allowed = false;
  for (const std::string& root : allowed_mount_roots) allowed |= Under(m, root);
  if (!allowed) {
    return Bad("mount_point",
               absl::StrCat("'", m, "' is outside the allowed roots (",
                            absl::StrJoin(allowed_mount_roots, ", "), ")"),
               reason::kVolumeMountPointOutsideRoots);
  }
  for (const std::string& o : c.mount_options()) {
    if (AllowedOptions().count(o) == 0) {
      return Bad("mount_options", absl::StrCat("'", o.substr(0, 40), "' is not allowed"));
    }
  }
  return absl::OkStatus();
}

VolumeManager::VolumeManager(VolumeDeps deps, VolumeOptions options)
    : deps_(deps), options_(std::move(options)) {}

absl::Status VolumeManager::Persist() {
  return deps_.fs->WriteFileAtomically(options_.state_path, state_.SerializeAsString(), 0600);
}

absl::Status VolumeManager::Restore() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<bool> read = ReadRecordFile(deps_.fs, options_.state_path, &state_, "volume records");
  if (!read.ok()) {
    if (absl::IsDataLoss(read.status())) records_lost_ = std::string(read.status().message());
    return absl::Status(read.status().code(),
                        absl::StrCat(read.status().message(), "; no volume is touched"));
  }
  return absl::OkStatus();  // Statuses() looks; nothing is changed here
}

VolumeStatus VolumeManager::Inspect(const VolumeRecord& r) {
  const SetupVolume& spec = r.spec();
  VolumeStatus s;
  s.set_volume_id(spec.volume_id());
  s.set_device(spec.device());
  s.set_mapper_name(spec.mapper_name());
  s.set_filesystem(FsName(spec));
  s.set_mount_point(spec.mount_point());
  if (r.wiped()) {
    s.set_state(VolumeStatus::WIPED);
    s.set_reason("crypto-erased by a wipe: mapping and LUKS header destroyed");
    return s;
  }
  auto fail = [&](const std::string& why) {
    s.set_state(VolumeStatus::FAILED);
    s.set_reason(why);
    return s;
  };
  absl::StatusOr<platform::BlockDevice> dev = deps_.devices->Resolve(spec.device());
  if (dev.ok()) s.set_device_path(dev->path);
  absl::StatusOr<platform::CryptStatus> cs = deps_.crypt->Status(spec.mapper_name());
  if (!cs.ok()) return fail(absl::StrCat("read mapping: ", cs.status().message()));
  if (!cs->active) {
    // No mapping: after a reboot the key is gone with it. That is the
    // design, not a fault to repair.
    s.set_state(VolumeStatus::KEY_LOST);
    s.set_reason(!r.complete() ? "setup was cut short (the agent stopped or a step failed "
                                 "after the format): the key is gone"
                 : r.boot_id() != options_.boot_id
                     ? "the VM rebooted since setup: the key is gone, the data unrecoverable"
                     : "the mapping was closed: the key is gone, the data unrecoverable");
    return s;
  }
  if (!r.complete()) return fail("setup was cut short after activation; not touched");
  s.set_cipher(cs->cipher);
  s.set_key_bits(static_cast<uint32_t>(cs->key_bits));
  if (!dev.ok()) return fail(absl::StrCat("device: ", dev.status().message()));
  if (cs->backing_rdev != dev->rdev) return fail("the mapping sits on another device");
  if (!r.luks_uuid().empty() && !cs->uuid.empty() && cs->uuid != r.luks_uuid()) {
    return fail("the mapping belongs to another LUKS header");
  }
  absl::StatusOr<uint64_t> mapped = deps_.filesystems->DeviceNumber("/dev/mapper/" + spec.mapper_name());
  absl::StatusOr<std::optional<uint64_t>> mounted = deps_.filesystems->MountedAt(spec.mount_point());
  if (!mapped.ok() || !mounted.ok() || !mounted->has_value() || **mounted != *mapped) {
    return fail("mapped but not mounted at " + spec.mount_point());
  }
  absl::StatusOr<platform::FsUsage> u = deps_.filesystems->Usage(spec.mount_point());
  if (u.ok()) {
    s.set_size_bytes(u->size_bytes);
    s.set_used_bytes(u->used_bytes);
  }
  s.set_state(VolumeStatus::ACTIVE);
  return s;
}

std::vector<VolumeStatus> VolumeManager::Statuses() {
  if (!mu_.TryLock()) {
    absl::MutexLock lock(&snapshot_mu_);
    return snapshot_;  // a setup is running
  }
  std::vector<VolumeStatus> out;
  for (const VolumeRecord& r : state_.volumes()) out.push_back(Inspect(r));
  mu_.Unlock();
  absl::MutexLock lock(&snapshot_mu_);
  snapshot_ = out;
  return out;
}

absl::StatusOr<nodeward::v1::CommandResult> VolumeManager::Apply(const VerifiedCommand& command) {
  absl::MutexLock lock(&mu_);
  if (!fence_.empty()) {
    return Reject(absl::StatusCode::kFailedPrecondition, reason::kWipeStarted,
                  absl::StrCat("setup volume ", command.command.setup_volume().volume_id(), ": ",
                               fence_));
  }
  // What the platform refused (libcryptsetup, mkfs, mount) has no reason
  // of its own.
  absl::StatusOr<nodeward::v1::CommandResult> r = SetupLocked(command.command.setup_volume());
  if (!r.ok()) return WithDefaultReason(r.status(), reason::kVolumeSetupFailed);
  return r;
}

void VolumeManager::Fence(const std::string& why) {
  absl::MutexLock lock(&mu_);
  fence_ = why;
}

absl::StatusOr<nodeward::v1::CommandResult> VolumeManager::SetupLocked(const SetupVolume& c) {
  RETURN_IF_ERROR(ValidateSetupVolume(c, options_.allowed_mount_roots));
  nodeward::v1::CommandResult result;
  auto* vr = result.mutable_volume();

  // Idempotence, and no two volumes on one device, mapping or mount point.
  int existing = -1;
  for (int i = 0; i < state_.volumes_size(); ++i) {
    const SetupVolume& o = state_.volumes(i).spec();
    if (o.volume_id() == c.volume_id()) {
      existing = i;
      continue;
    }
    if (o.mapper_name() == c.mapper_name() || o.mount_point() == c.mount_point() ||
        o.device() == c.device()) {
      return Refuse(reason::kVolumeConflict,
                    absl::StrCat("setup_volume ", c.volume_id(),
                                 ": device, mapper name or mount point already belongs to volume ",
                                 o.volume_id()));
    }
  }
  if (existing >= 0) {
    const VolumeRecord& r = state_.volumes(existing);
    if (r.wiped()) {
      return Refuse(reason::kVolumeWiped,
                    absl::StrCat("setup_volume ", c.volume_id(),
                                 ": the volume was wiped; this node sets up no more volumes"));
    }
    if (!SameSpec(r.spec(), c)) {
      return Refuse(reason::kVolumeSpecChanged, absl::StrCat(
          "setup_volume ", c.volume_id(), ": already set up with another spec (device ",
          r.spec().device(), ", mapper ", r.spec().mapper_name(), ", mount point ",
          r.spec().mount_point(), ")"));
    }
    VolumeStatus now = Inspect(r);
    if (now.state() == VolumeStatus::ACTIVE) {
      *vr->mutable_volume() = now;
      vr->set_already_active(true);
      return result;
    }
    if (now.state() == VolumeStatus::FAILED) {
      return Refuse(reason::kVolumeFailed,
                    absl::StrCat("setup_volume ", c.volume_id(), ": volume is in a failed state (",
                                 now.reason(), "); not touched"));
    }
    // KEY_LOST: only a new signed command that says so may reformat.
    if (!c.destroy_existing_data()) {
      return Refuse(reason::kVolumeKeyLost, absl::StrCat(
          "setup_volume ", c.volume_id(), ": KEY_LOST (", now.reason(),
          "); resend with destroy_existing_data to make a new, empty volume"));
    }
  }

  // The device: resolved now, unused, and blank unless destroying is signed.
  absl::StatusOr<platform::BlockDevice> resolved = deps_.devices->Resolve(c.device());
  if (!resolved.ok()) return WithReason(resolved.status(), reason::kVolumeDeviceNotFound);
  const platform::BlockDevice dev = std::move(resolved).value();
  ASSIGN_OR_RETURN(platform::DeviceUse use, deps_.devices->Use(dev));
  if (use.in_use()) {
    return Refuse(reason::kVolumeDeviceInUse,
                  absl::StrCat("setup_volume ", c.volume_id(), ": device ", dev.path,
                               " is in use (", use.description, ")"));
  }
  ASSIGN_OR_RETURN(platform::CryptStatus named, deps_.crypt->Status(c.mapper_name()));
  if (named.active) {
    return Refuse(reason::kVolumeMappingExists,
                  absl::StrCat("setup_volume ", c.volume_id(), ": a mapping named ",
                               c.mapper_name(), " already exists"));
  }
  ASSIGN_OR_RETURN(std::optional<uint64_t> at, deps_.filesystems->MountedAt(c.mount_point()));
  if (at.has_value()) {
    return Refuse(reason::kVolumeMountPointBusy,
                  absl::StrCat("setup_volume ", c.volume_id(), ": something is already mounted at ",
                               c.mount_point()));
  }
  ASSIGN_OR_RETURN(platform::DeviceContent content, deps_.devices->Probe(dev));
  if (!content.blank() && !c.destroy_existing_data()) {
    return Refuse(reason::kVolumeDeviceNotBlank, absl::StrCat(
        "setup_volume ", c.volume_id(), ": device ", dev.path, " holds data (",
        content.description, "); resend with destroy_existing_data to erase it"));
  }

  // Fail before anything is written when the setup cannot finish: no
  // dm-crypt on this kernel, no mkfs for the asked file system (on fcf3c42
  // the header was written first and the volume left KEY_LOST).
  if (absl::Status s = deps_.crypt->CheckAvailable(); !s.ok()) {
    return Refuse(reason::kVolumePlatformUnsupported,
                  absl::StrCat("setup_volume ", c.volume_id(), ": ", s.message()));
  }
  if (absl::Status s = deps_.filesystems->CheckMkfs(FsOf(c)); !s.ok()) {
    return Refuse(reason::kVolumePlatformUnsupported,
                  absl::StrCat("setup_volume ", c.volume_id(), ": ", s.message()));
  }

  // Remember the attempt before the device is written: if the agent dies
  // between here and the mount, the volume is KEY_LOST after a restart, not
  // an unknown device with a stray header.
  VolumeRecord rec;
  *rec.mutable_spec() = c;
  rec.mutable_spec()->set_destroy_existing_data(false);
  rec.set_boot_id(options_.boot_id);
  *rec.mutable_set_up_at() = ToTimestamp(deps_.clock->Now());
  rec.set_complete(false);
  const int index = existing >= 0 ? existing : state_.volumes_size();
  if (existing >= 0) {
    *state_.mutable_volumes(existing) = rec;
  } else {
    *state_.add_volumes() = rec;
  }
  if (absl::Status s = Persist(); !s.ok()) {
    if (existing < 0) state_.mutable_volumes()->RemoveLast();
    return WithReason(absl::UnavailableError(absl::StrCat("setup_volume ", c.volume_id(),
                                                          ": record the attempt: ", s.message(),
                                                          "; nothing written to the device")),
                      reason::kVolumeStateNotPersisted);
  }

  // Nothing written yet: a failure before the format forgets the attempt.
  const VolumeRecord previous = existing >= 0 ? state_.volumes(existing) : VolumeRecord();
  auto forget = [&](absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (existing >= 0) {
      *state_.mutable_volumes(existing) = previous;
    } else {
      state_.mutable_volumes()->RemoveLast();
    }
    (void)Persist();
    return why;
  };
  std::string uuid;
  {
    // Exclusive open: nobody has it open exclusively (no mount, no mapping)
    // and the node still is the device that was checked. libcryptsetup
    // takes its own exclusive open, so ours ends before the format; the
    // mapping's device and header are re-checked right after activation.
    absl::StatusOr<std::unique_ptr<platform::DeviceHandle>> handle =
        deps_.devices->OpenExclusive(dev);
    if (!handle.ok()) return forget(handle.status());
  }
  {
    absl::StatusOr<SecureBuffer> made = SecureBuffer::Create(kVolumeKeyBytes);
    if (!made.ok()) return forget(made.status());
    SecureBuffer key = std::move(made).value();
    if (absl::Status s = deps_.random->Fill(absl::MakeSpan(key.data(), key.size())); !s.ok()) {
      return forget(s);
    }
    // The last look before the first write: still the same disk (a swap
    // after the checks above is found here). What remains is the window
    // between this look and libcryptsetup's own open of the path
    // (docs/volumes.md).
    if (absl::Status s = deps_.devices->Recheck(dev); !s.ok()) return forget(s);
    ASSIGN_OR_RETURN(uuid, deps_.crypt->Format(dev, absl::MakeConstSpan(key.data(), key.size()),
                                               Params(c)));
    RETURN_IF_ERROR(deps_.crypt->Activate(dev, c.mapper_name(),
                                          absl::MakeConstSpan(key.data(), key.size()), Params(c)));
    // `key` is wiped and unmapped here: from now on only the kernel has it.
  }
  Step(c.volume_id(), "formatted",
       absl::StrCat("LUKS2 ", uuid, " on ", dev.path, ", mapped as /dev/mapper/", c.mapper_name()));
  auto undo = [&](const absl::Status& why) {
    (void)deps_.crypt->Deactivate(c.mapper_name());  // the key dies with the mapping
    Step(c.volume_id(), "failed", absl::StrCat(why.message(), "; mapping closed"), true);
    return absl::Status(why.code(),
                        absl::StrCat("setup_volume ", c.volume_id(), ": ", why.message(),
                                     "; mapping closed (the device keeps an unusable LUKS header "
                                     "with no keyslot: resend with destroy_existing_data)"));
  };
  absl::StatusOr<platform::CryptStatus> st = deps_.crypt->Status(c.mapper_name());
  if (!st.ok()) return undo(st.status());
  if (!st->active || st->backing_rdev != dev.rdev || (!st->uuid.empty() && st->uuid != uuid)) {
    return WithReason(undo(absl::AbortedError("the device changed between check and use")),
                      reason::kVolumeDeviceChanged);
  }
  const std::string mapped = "/dev/mapper/" + c.mapper_name();
  if (absl::Status s = deps_.filesystems->Mkfs(mapped, FsOf(c)); !s.ok()) return undo(s);
  Step(c.volume_id(), "mkfs", absl::StrCat(FsName(c), " on ", mapped));
  if (absl::Status s = deps_.filesystems->MakeDirectories(c.mount_point()); !s.ok()) {
    return undo(s);
  }
  if (absl::Status s = deps_.filesystems->Mount(mapped, c.mount_point(), FsOf(c), MountOptions(c));
      !s.ok()) {
    return undo(s);
  }
  Step(c.volume_id(), "mounted", absl::StrCat(mapped, " on ", c.mount_point()));

  VolumeRecord* done = state_.mutable_volumes(index);
  done->set_luks_uuid(uuid);
  done->set_complete(true);
  if (absl::Status s = Persist(); !s.ok()) {
    // The volume works but would be unknown after a restart: report it and
    // keep the record in memory; the next command persists again.
    return WithReason(absl::UnavailableError(absl::StrCat(
                          "setup_volume ", c.volume_id(),
                          ": active and mounted, but persisting the record failed: ", s.message())),
                      reason::kVolumeStateNotPersisted);
  }
  *vr->mutable_volume() = Inspect(state_.volumes(index));
  return result;
}

}  // namespace nodeward::volume
