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
//!
//! How the engine is expected to use it, per container:
//! 1. at create: parse `Binds` with [`parse_bind`], `Mounts` with [`parse_mount_api`] and
//!    `Tmpfs` with [`parse_tmpfs`]; for each volume spec, [`VolumeStore::create`] (name
//!    `None` for an anonymous one; labels and driver options from the spec), which returns
//!    the existing volume when the name is taken;
//! 2. for a volume that was just created and whose spec is not `nocopy`:
//!    `let p = store.mount(name, ref)?; copy_up(rootfs_at_target, &p)?` (copy-up itself
//!    skips a non-empty volume, as dockerd does);
//! 3. at start: [`VolumeStore::mount`] with the container id as ref, bind the returned path;
//!    tmpfs specs become OCI tmpfs mounts with [`tmpfs_oci_options`];
//! 4. at stop: [`VolumeStore::unmount`]; at `rm -v`: [`VolumeStore::remove`] of its
//!    anonymous volumes, passing the other containers still using them.

pub mod copy;
mod error;
pub mod mount;
pub mod spec;
pub mod volumes;

pub use copy::copy_up;
pub use error::{Error, ErrorKind};
pub use mount::{source_mount, FakeMounter, MountRequest, Mounter, SystemMounter};
pub use spec::{
    parse_bind, parse_bind_for_driver, parse_mount_api, parse_mount_flag, parse_tmpfs,
    parse_tmpfs_flag, tmpfs_oci_options, validate_target, validate_volume_name, MountSpec,
    MountType, SpecError,
};
pub use volumes::{LabelFilter, Volume, VolumeStore};
