//! berth-volume: Docker's volume data model as a library.
//!
//! - [`spec`]: `-v`, `--mount` and `--tmpfs` parsing and validation into [`MountSpec`];
//! - [`volumes`]: the volume store with the `local` driver (plain directories, or real
//!   mounts for `type=`/`device=` options), ref-counted mounts, usage and prune;
//! - [`copy`]: copy-up of image content into a fresh volume;
//! - [`mount`]: the narrow [`Mounter`] trait every mount syscall goes through, with the
//!   real implementation and a recording fake for tests.
//!
//! The crate knows nothing about containers: the engine passes the ids of the containers
//! that use a volume, and ref ids for mounts.

pub mod copy;
mod error;
pub mod mount;
pub mod spec;
pub mod volumes;

pub use copy::copy_up;
pub use error::{Error, ErrorKind};
pub use mount::{FakeMounter, MountRequest, Mounter, SystemMounter};
pub use spec::{
    parse_bind, parse_bind_for_driver, parse_mount_api, parse_mount_flag, parse_tmpfs,
    parse_tmpfs_flag, tmpfs_oci_options, validate_target, validate_volume_name, MountSpec,
    MountType, SpecError,
};
pub use volumes::{LabelFilter, Volume, VolumeStore};
