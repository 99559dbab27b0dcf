#ifndef NODEWARD_TESTS_FAKES_FAKE_VOLUME_H_
#define NODEWARD_TESTS_FAKES_FAKE_VOLUME_H_

// In-memory disks, dm-crypt, file systems and mounts, with the kernel's
// rules that matter to the volume logic: an active mapping holds its device,
// a mounted device is in use, a reboot loses every mapping. Keys never leave
// the fake's record of "the kernel" (the tests look there).

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "platform/volume.h"

namespace nodeward::platform {

class FakeVolumes {
 public:
  struct Disk {
    std::string path;
    uint64_t rdev = 0;
    DeviceContent content;
    std::optional<LuksHeader> header;
    bool busy = false;  // someone else holds it exclusively
  };
  struct Mapping {
    std::string device_path;
    std::vector<uint8_t> key;  // what the kernel keyring holds
    std::string uuid;
    bool discards = false;
  };

  void AddDisk(const std::string& stable_id, const std::string& path, uint64_t rdev) {
    disks_[stable_id] = Disk{path, rdev, {}, std::nullopt, false};
  }
  Disk& disk(const std::string& stable_id) { return disks_.at(stable_id); }
  void RemoveDisk(const std::string& stable_id) { disks_.erase(stable_id); }
  // Everything in memory is lost; disks keep their content.
  void Reboot() {
    mappings_.clear();
    mounts_.clear();
  }
  void Unmount(const std::string& target) { mounts_.erase(target); }
  std::map<std::string, Mapping>& mappings() { return mappings_; }
  std::map<std::string, uint64_t>& mounts() { return mounts_; }
  std::vector<std::string>& log() { return log_; }
  // Called between the exclusive open and the post-activation check.
  std::function<void()> after_open;
  // Called when the device is probed (after the in-use checks).
  std::function<void()> probe_hook;
  // Called at the start of Activate (after the format).
  std::function<void()> before_activate;
  // Called inside Mkfs (a long step in real life).
  std::function<void()> during_mkfs;
  // Called at the start of EraseHeader (inside a wipe).
  std::function<void()> during_erase;

  class Devices final : public BlockDevices {
   public:
    explicit Devices(FakeVolumes* v) : v_(v) {}
    absl::StatusOr<BlockDevice> Resolve(const std::string& id) override {
      if (!absl::StartsWith(id, "/dev/disk/by-id/") && !absl::StartsWith(id, "serial:")) {
        return absl::InvalidArgumentError("not a stable id");
      }
      auto it = v_->disks_.find(id);
      if (it == v_->disks_.end()) return absl::NotFoundError(absl::StrCat("device ", id));
      return BlockDevice{id, it->second.path, it->second.rdev, 1ull << 30};
    }
    absl::Status Recheck(const BlockDevice& d) override {
      absl::StatusOr<BlockDevice> now = Resolve(d.stable_id);
      if (!now.ok() || now->path != d.path || now->rdev != d.rdev) {
        return absl::AbortedError(absl::StrCat("device ", d.stable_id, " changed (fake)"));
      }
      return absl::OkStatus();
    }
    absl::StatusOr<DeviceContent> Probe(const BlockDevice& d) override {
      if (v_->probe_hook) v_->probe_hook();
      const Disk* disk = v_->ByPath(d.path);
      if (disk == nullptr) return absl::NotFoundError(d.path);
      DeviceContent c = disk->content;
      if (disk->header.has_value()) {
        c.luks = true;
        c.description = "LUKS header";
      }
      return c;
    }
    absl::StatusOr<DeviceUse> Use(const BlockDevice& d) override {
      DeviceUse u;
      const Disk* disk = v_->ByPath(d.path);
      if (disk == nullptr) return absl::NotFoundError(d.path);
      for (const auto& [target, rdev] : v_->mounts_) {
        if (rdev == disk->rdev) u.mounted = true;
      }
      for (const auto& [name, m] : v_->mappings_) {
        if (m.device_path == d.path) u.held = true;
      }
      u.busy = disk->busy;
      u.description = u.mounted ? "mounted" : u.held ? "held by a mapping" : "busy";
      return u;
    }
    absl::StatusOr<std::unique_ptr<DeviceHandle>> OpenExclusive(const BlockDevice& d) override {
      const Disk* disk = v_->ByPath(d.path);
      if (disk == nullptr) return absl::NotFoundError(d.path);
      if (disk->rdev != d.rdev) return absl::AbortedError("device changed between check and use");
      if (disk->busy) return absl::FailedPreconditionError("busy");
      auto h = std::make_unique<Handle>(d);
      if (v_->after_open) v_->after_open();
      return std::unique_ptr<DeviceHandle>(std::move(h));
    }

   private:
    FakeVolumes* v_;
  };

  class FakeCrypt final : public Crypt {
   public:
    explicit FakeCrypt(FakeVolumes* v) : v_(v) {}
    absl::Status CheckAvailable() override {
      if (!v_->dm_crypt_available) {
        return absl::FailedPreconditionError("dm-crypt is not available on this kernel (fake)");
      }
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> Format(const BlockDevice& h, absl::Span<const uint8_t> key,
                                       const CryptParams& p) override {
      Disk* disk = v_->ByPath(h.path);
      if (disk == nullptr) return absl::NotFoundError(h.path);
      LuksHeader hdr;
      hdr.version = "LUKS2";
      hdr.uuid = absl::StrCat("uuid-", ++v_->uuids_);
      hdr.cipher = absl::StrCat(p.cipher, "-", p.cipher_mode);
      hdr.key_bits = static_cast<int>(key.size() * 8);
      hdr.keyslots = 0;
      disk->header = hdr;
      disk->content = DeviceContent{};
      v_->log_.push_back("format " + h.path);
      return hdr.uuid;
    }
    absl::Status Activate(const BlockDevice& h, const std::string& name,
                          absl::Span<const uint8_t> key, const CryptParams& p) override {
      if (v_->before_activate) v_->before_activate();
      Disk* disk = v_->ByPath(h.path);
      if (disk == nullptr || !disk->header.has_value()) return absl::NotFoundError("no header");
      if (v_->mappings_.count(name) != 0) return absl::AlreadyExistsError(name);
      v_->mappings_[name] = Mapping{h.path, std::vector<uint8_t>(key.begin(), key.end()),
                                    disk->header->uuid, p.allow_discards};
      v_->log_.push_back("activate " + name);
      return absl::OkStatus();
    }
    absl::StatusOr<CryptStatus> Status(const std::string& name) override {
      CryptStatus s;
      auto it = v_->mappings_.find(name);
      if (it == v_->mappings_.end()) return s;
      const Disk* disk = v_->ByPath(it->second.device_path);
      s.active = true;
      s.backing_rdev = disk == nullptr ? 0 : disk->rdev;
      s.cipher = "aes-xts-plain64";
      s.key_bits = static_cast<int>(it->second.key.size() * 8);
      s.uuid = it->second.uuid;
      s.key_in_keyring = true;
      return s;
    }
    absl::StatusOr<LuksHeader> ReadHeader(const BlockDevice& d) override {
      const Disk* disk = v_->ByPath(d.path);
      if (disk == nullptr || !disk->header.has_value()) return absl::NotFoundError("no header");
      return *disk->header;
    }
    absl::Status Deactivate(const std::string& name) override {
      v_->mappings_.erase(name);
      v_->log_.push_back("deactivate " + name);
      return absl::OkStatus();
    }
    absl::Status ForceDeactivate(const std::string& name) override {
      if (v_->fail_force_deactivate) return absl::InternalError("dm remove failed");
      v_->mappings_.erase(name);
      v_->log_.push_back("force-deactivate " + name);
      return absl::OkStatus();
    }
    absl::StatusOr<uint64_t> EraseHeader(const BlockDevice& d) override {
      if (v_->during_erase) v_->during_erase();
      Disk* disk = v_->ByPath(d.path);
      if (disk == nullptr) return absl::NotFoundError(d.path);
      for (const auto& [name, m] : v_->mappings_) {
        if (m.device_path == d.path) return absl::FailedPreconditionError("device held");
      }
      if (v_->fail_erase > 0) {
        --v_->fail_erase;
        return absl::DataLossError("write error");
      }
      if (!disk->header.has_value()) return uint64_t{0};
      disk->header.reset();
      disk->content = DeviceContent{};
      v_->log_.push_back("erase-header " + d.path);
      return uint64_t{16} << 20;
    }

   private:
    FakeVolumes* v_;
  };

  class Fs final : public Filesystems {
   public:
    explicit Fs(FakeVolumes* v) : v_(v) {}
    absl::Status CheckMkfs(FsType type) override {
      if (v_->mkfs_missing.count(type) != 0) {
        return absl::FailedPreconditionError("mkfs is not installed (fake)");
      }
      return absl::OkStatus();
    }
    absl::Status Mkfs(const std::string& device, FsType) override {
      if (v_->during_mkfs) v_->during_mkfs();
      if (v_->fail_mkfs) return absl::InternalError("mkfs failed");
      v_->log_.push_back("mkfs " + device);
      return absl::OkStatus();
    }
    absl::Status Mount(const std::string& device, const std::string& target, FsType,
                       const std::string& options) override {
      absl::StatusOr<uint64_t> rdev = DeviceNumber(device);
      if (!rdev.ok()) return rdev.status();
      v_->mounts_[target] = *rdev;
      v_->log_.push_back("mount " + device + " " + target + " " + options);
      return absl::OkStatus();
    }
    absl::StatusOr<std::optional<uint64_t>> MountedAt(const std::string& target) override {
      auto it = v_->mounts_.find(target);
      if (it == v_->mounts_.end()) return std::optional<uint64_t>();
      return std::optional<uint64_t>(it->second);
    }
    absl::StatusOr<FsUsage> Usage(const std::string&) override { return FsUsage{1u << 30, 1u << 20}; }
    absl::StatusOr<uint64_t> DeviceNumber(const std::string& node) override {
      // /dev/mapper/<name> numbers: 253:<index of the mapping>.
      const std::string prefix = "/dev/mapper/";
      if (node.rfind(prefix, 0) == 0 && v_->mappings_.count(node.substr(prefix.size())) != 0) {
        uint64_t i = 0;
        for (const auto& [name, m] : v_->mappings_) {
          if (name == node.substr(prefix.size())) return (253ull << 20) | i;
          ++i;
        }
      }
      for (const auto& [id, d] : v_->disks_) {
        if (d.path == node) return d.rdev;
      }
      return absl::NotFoundError(node);
    }
    absl::Status MakeDirectories(const std::string&) override { return absl::OkStatus(); }
    absl::Status Unmount(const std::string& target, bool lazy) override {
      if (v_->busy_mounts.count(target) != 0 && !lazy) return absl::FailedPreconditionError("busy");
      v_->mounts_.erase(target);
      v_->log_.push_back(std::string(lazy ? "lazy-unmount " : "unmount ") + target);
      return absl::OkStatus();
    }

   private:
    FakeVolumes* v_;
  };

  class Rng final : public Random {
   public:
    absl::Status Fill(absl::Span<uint8_t> out) override {
      for (uint8_t& b : out) b = static_cast<uint8_t>(0x5a ^ (n_++ * 37));
      return absl::OkStatus();
    }

   private:
    uint8_t n_ = 1;
  };

  bool fail_mkfs = false;
  bool fail_force_deactivate = false;
  int fail_erase = 0;                 // the next N EraseHeader calls fail
  bool dm_crypt_available = true;     // CheckAvailable's answer
  std::set<FsType> mkfs_missing;      // CheckMkfs fails for these
  std::set<std::string> busy_mounts;  // a plain unmount fails (files open)
  Devices devices{this};
  FakeCrypt crypt{this};
  Fs filesystems{this};
  Rng random;

 private:
  struct Handle final : public DeviceHandle {
    explicit Handle(BlockDevice d) : d_(std::move(d)) {}
    const BlockDevice& device() const override { return d_; }
    BlockDevice d_;
  };
  Disk* ByPath(const std::string& path) {
    for (auto& [id, d] : disks_) {
      if (d.path == path) return &d;
    }
    return nullptr;
  }

  std::map<std::string, Disk> disks_;
  std::map<std::string, Mapping> mappings_;
  std::map<std::string, uint64_t> mounts_;
  std::vector<std::string> log_;
  int uuids_ = 0;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_TESTS_FAKES_FAKE_VOLUME_H_
