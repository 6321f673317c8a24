//! The only place that reads the machine's device tree: `model` and `compatible` under a
//! root that tests can point elsewhere.

use std::io::Read;
use std::path::Path;

use super::select::{DeviceTree, MAX_PROPERTY_BYTES};

/// Where Linux shows the device tree it booted with.
pub const DEFAULT_ROOT: &str = "/proc/device-tree";

/// The device tree under `root` (`root/model`, `root/compatible`). A property that is
/// absent or unreadable counts as absent: a PC has no device tree, and that is no error.
pub fn read(root: &Path) -> DeviceTree {
    let prop = |name: &str| -> Option<Vec<u8>> {
        let f = std::fs::File::open(root.join(name)).ok()?;
        let mut buf = Vec::new();
        f.take(MAX_PROPERTY_BYTES as u64)
            .read_to_end(&mut buf)
            .ok()?;
        Some(buf)
    };
    DeviceTree::from_bytes(prop("model").as_deref(), prop("compatible").as_deref())
}
