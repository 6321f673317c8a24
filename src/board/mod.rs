//! Board profiles: per board, the target triple, the default camera and the video encoders
//! (hardware first, software fallback), chosen by `-board` or the device tree.
//!
//! The profiles are the JSON files of `board/`, built into the binary, so `-board rpi4`
//! works with nothing installed; `-board ./myboard.json` reads a file of the same form.
//! [`select()`] picks the profile (pure), [`encoder::pick`] the encoder of each codec given
//! what this GStreamer has (pure), and [`devicetree`] is the only part that reads the
//! machine.

pub mod devicetree;
pub mod encoder;
pub mod profile;
pub mod select;

pub use encoder::{EncoderChoice, EncoderPick};
pub use profile::{Camera, Profile};
pub use select::{Chosen, DeviceTree, SelectError, Selection, select};

/// Says in the log which board profile the agent runs with and why (also when none
/// matched and the generic one is used).
pub fn log_selection(s: &Selection) {
    tracing::info!(
        "board {} ({}): {}",
        s.profile.name,
        s.profile.description,
        s.reason()
    );
}

/// The built-in profiles: `board/<name>.json`.
pub mod builtin {
    use std::path::Path;

    use super::profile::{self, Profile};
    use crate::config::ConfigError;

    /// Every built-in profile's name, in the order `-board`'s errors list them.
    pub const NAMES: [&str; 7] = [
        "rpi4",
        "rpi5",
        "rk3588",
        "imx8mp",
        "jetson-orin",
        "qemu-arm64",
        "generic",
    ];

    const TEXTS: [&str; 7] = [
        include_str!("../../board/rpi4.json"),
        include_str!("../../board/rpi5.json"),
        include_str!("../../board/rk3588.json"),
        include_str!("../../board/imx8mp.json"),
        include_str!("../../board/jetson-orin.json"),
        include_str!("../../board/qemu-arm64.json"),
        include_str!("../../board/generic.json"),
    ];

    /// Every built-in profile, parsed. An error means the binary was built with a broken
    /// profile (the tests parse every one, so a release never is).
    pub fn all() -> Result<Vec<Profile>, ConfigError> {
        NAMES
            .iter()
            .zip(TEXTS)
            .map(|(name, text)| {
                let file = format!("board/{name}.json (built in)");
                let mut p = profile::parse(Path::new(&file), text)?;
                p.origin = "built in".into();
                Ok(p)
            })
            .collect()
    }

    /// The built-in profile `name`.
    pub fn get(name: &str) -> Result<Profile, ConfigError> {
        all()?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ConfigError {
                file: None,
                line: 0,
                column: 0,
                field: "board".into(),
                message: format!("no built-in board profile {name:?}"),
            })
    }
}

#[cfg(test)]
mod tests;
