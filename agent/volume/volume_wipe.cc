// The wipe side of VolumeManager (threats.md 16, 27-29): each volume's file
// system stopped, its mapping (and with it the key) removed, its LUKS header
// overwritten and the result verified; one journal entry per volume.
#include "agent/volume/volume_manager.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nodeward::volume {

using nodeward::v1::SetupVolume;
using nodeward::v1::VolumeRecord;

void VolumeManager::Step(const std::string& id, const std::string& step,
                         const std::string& detail, bool problem) {
  if (deps_.journal == nullptr) return;
  deps_.journal->Send(problem ? 4 : 6, absl::StrCat("volume ", id, " ", step, ": ", detail),
                      {{"EVENT", "volume_step"}, {"VOLUME_ID", id}, {"STEP", step}});
}

std::vector<nodeward::v1::WipeItem> VolumeManager::WipeAll() {
  absl::MutexLock lock(&mu_);
  std::vector<nodeward::v1::WipeItem> out;
  for (int i = 0; i < state_.volumes_size(); ++i) {
    out.push_back(WipeOne(state_.mutable_volumes(i)));
    Step(out.back().id(), out.back().verified() ? "wiped" : "wipe_failed", out.back().detail(),
         !out.back().verified());
  }
  if (!records_lost_.empty()) {
    // Never "complete" over volumes nobody can name any more.
    nodeward::v1::WipeItem lost;
    lost.set_kind(nodeward::v1::WipeItem::VOLUME);
    lost.set_id(options_.state_path);
    lost.set_detail(absl::StrCat("volume records were lost at startup (", records_lost_,
                                 "): volumes set up before cannot be found; not verified"));
    out.push_back(std::move(lost));
  }
  if (absl::Status s = Persist(); !s.ok()) {
    // The volumes are erased all the same; only the record says otherwise
    // until the next successful write (a resumed wipe rewrites it).
    for (auto& item : out) {
      if (item.verified()) {
        item.set_verified(false);
        item.set_detail(absl::StrCat(item.detail(), "; recording it failed: ", s.message()));
      }
    }
  }
  return out;
}

nodeward::v1::WipeItem VolumeManager::WipeOne(VolumeRecord* r) {
  const SetupVolume& spec = r->spec();
  nodeward::v1::WipeItem item;
  item.set_kind(nodeward::v1::WipeItem::VOLUME);
  item.set_id(spec.volume_id());
  item.set_luks_uuid(r->luks_uuid());
  std::vector<std::string> done;
  auto failed = [&](const std::string& step, const absl::Status& s) {
    item.set_verified(false);
    done.push_back(absl::StrCat(step, " FAILED: ", s.message()));
    item.set_detail(absl::StrJoin(done, "; "));
    return item;
  };
  absl::StatusOr<platform::BlockDevice> dev = deps_.devices->Resolve(spec.device());
  bool absent = absl::IsNotFound(dev.status());
  if (dev.ok()) {
    // A node whose device is gone (ENXIO/ENODEV on open) is not attached either.
    absl::StatusOr<platform::DeviceContent> probe = deps_.devices->Probe(*dev);
    absent = absl::IsNotFound(probe.status());
  }
  if (absent) {
    // The disk is gone from this VM (detached). Without it there is no
    // mapping and no key here: the crypto-erase holds (the key never existed
    // outside this VM's memory), but its header could not be overwritten.
    absl::StatusOr<platform::CryptStatus> cs = deps_.crypt->Status(spec.mapper_name());
    if (!cs.ok()) return failed("read mapping " + spec.mapper_name(), cs.status());
    if (cs->active && !cs->key_destroyed) {
      absl::Status d = deps_.crypt->ForceDeactivate(spec.mapper_name());
      if (!d.ok()) return failed("remove mapping " + spec.mapper_name(), d);
      done.push_back("mapping " + spec.mapper_name() + " force-removed (key gone)");
    }
    absl::StatusOr<std::optional<uint64_t>> m = deps_.filesystems->MountedAt(spec.mount_point());
    if (m.ok() && m->has_value()) {
      (void)deps_.filesystems->Unmount(spec.mount_point(), /*lazy=*/true);
    }
    done.push_back(absl::StrCat("device ", spec.device(),
                                " is not attached: no mapping, the key is gone; its header "
                                "was not overwritten (not reachable from this VM)"));
    r->set_wiped(true);
    item.set_verified(true);
    item.set_detail(absl::StrJoin(done, "; "));
    return item;
  }
  if (!dev.ok()) return failed("resolve " + spec.device(), dev.status());
  item.set_device_path(dev->path);

  // 1. Stop the file system: a clean unmount if possible, else detach it
  //    (files still open keep it alive, but the mapping goes next anyway).
  absl::StatusOr<std::optional<uint64_t>> at = deps_.filesystems->MountedAt(spec.mount_point());
  if (!at.ok()) return failed("look at " + spec.mount_point(), at.status());
  if (at->has_value()) {
    absl::Status u = deps_.filesystems->Unmount(spec.mount_point(), /*lazy=*/false);
    if (u.ok()) {
      done.push_back("unmounted " + spec.mount_point());
    } else {
      u = deps_.filesystems->Unmount(spec.mount_point(), /*lazy=*/true);
      if (!u.ok()) return failed("unmount " + spec.mount_point(), u);
      done.push_back("detached " + spec.mount_point() + " (files were open)");
    }
  }
  // 2. The key: gone with the mapping (forced if something still holds it).
  absl::StatusOr<platform::CryptStatus> cs = deps_.crypt->Status(spec.mapper_name());
  if (!cs.ok()) return failed("read mapping " + spec.mapper_name(), cs.status());
  if (cs->active && cs->key_destroyed) {
    done.push_back("mapping " + spec.mapper_name() + " is an error target (key gone), still held open");
  } else if (cs->active) {
    if (cs->backing_rdev != dev->rdev) {
      return failed("mapping " + spec.mapper_name(),
                    absl::FailedPreconditionError("it sits on another device; not touched"));
    }
    absl::Status d = deps_.crypt->Deactivate(spec.mapper_name());
    if (d.ok()) {
      done.push_back("mapping " + spec.mapper_name() + " removed (key gone)");
    } else {
      d = deps_.crypt->ForceDeactivate(spec.mapper_name());
      if (!d.ok()) return failed("remove mapping " + spec.mapper_name(), d);
      absl::StatusOr<platform::CryptStatus> left = deps_.crypt->Status(spec.mapper_name());
      done.push_back("mapping " + spec.mapper_name() +
                     (left.ok() && left->active
                          ? " force-removed: its table is an error target now (key gone); the "
                            "device node stays until the last process holding it exits"
                          : " force-removed (key gone)"));
    }
  } else {
    done.push_back("no mapping (key already gone)");
  }
  // 3. The header: only if it is still the one this volume made (a device
  //    re-used by someone else since is not ours to erase).
  absl::StatusOr<platform::LuksHeader> hdr = deps_.crypt->ReadHeader(*dev);
  absl::StatusOr<platform::DeviceContent> before = deps_.devices->Probe(*dev);
  if (!hdr.ok() && before.ok() && before->luks) {
    // A LUKS signature that libcryptsetup cannot load (a format cut short):
    // still ours (the record says this volume was formatted here), erased.
    absl::StatusOr<uint64_t> erased = deps_.crypt->EraseHeader(*dev);
    if (!erased.ok()) return failed("erase damaged header of " + dev->path, erased.status());
    done.push_back(absl::StrCat("damaged LUKS header area overwritten (", *erased, " bytes)"));
  } else if (hdr.ok()) {
    if (!r->luks_uuid().empty() && hdr->uuid != r->luks_uuid()) {
      return failed("erase header of " + dev->path,
                    absl::FailedPreconditionError(absl::StrCat(
                        "the device holds another LUKS header (", hdr->uuid, "); not touched")));
    }
    absl::StatusOr<uint64_t> erased = deps_.crypt->EraseHeader(*dev);
    if (!erased.ok()) return failed("erase header of " + dev->path, erased.status());
    done.push_back(absl::StrCat("LUKS header area overwritten (", *erased, " bytes)"));
  } else {
    done.push_back("no LUKS header left");
  }
  // 4. Check, from scratch.
  absl::StatusOr<platform::CryptStatus> after = deps_.crypt->Status(spec.mapper_name());
  absl::StatusOr<std::optional<uint64_t>> mounted = deps_.filesystems->MountedAt(spec.mount_point());
  absl::StatusOr<platform::DeviceContent> content = deps_.devices->Probe(*dev);
  if (!after.ok() || (after->active && !after->key_destroyed)) {
    return failed("verify", absl::InternalError("the mapping still holds a key"));
  }
  if (!mounted.ok() || mounted->has_value()) {
    return failed("verify", absl::InternalError("something is still mounted at " +
                                                spec.mount_point()));
  }
  if (!content.ok()) return failed("verify: probe " + dev->path, content.status());
  if (content->luks || deps_.crypt->ReadHeader(*dev).ok()) {
    return failed("verify", absl::InternalError("a LUKS header is still readable"));
  }
  done.push_back("verified: no mapping, not mounted, no LUKS header");
  r->set_wiped(true);
  item.set_verified(true);
  item.set_detail(absl::StrJoin(done, "; "));
  return item;
}

}  // namespace nodeward::volume
