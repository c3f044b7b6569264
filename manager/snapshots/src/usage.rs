//! Disk usage of a snapshot's own data, as containerd measures it: blocks
//! allocated (st_blocks * 512) and inodes, each inode once.

use crate::{io_err, Result, Usage};
use std::path::Path;

pub(crate) fn measure(dir: &Path) -> Result<Usage> {
    let (size, inodes) =
        hull_diff::disk_usage(dir).map_err(io_err("measuring disk usage of", dir))?;
    Ok(Usage { size, inodes })
}
