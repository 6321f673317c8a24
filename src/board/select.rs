//! Which profile a box runs with: the one `-board` (or the config's `board`) names, else
//! the one whose device-tree names match this machine's, else `generic`. Pure: the device
//! tree comes in as data.

use std::fmt;
use std::path::Path;

use super::builtin;
use super::profile::{self, Profile};
use crate::config::ConfigError;

/// What the device tree says about the machine (`/proc/device-tree/model` and
/// `compatible`); empty where there is none, as on a PC.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceTree {
    pub model: Option<String>,
    /// Most specific first, as the kernel lists them.
    pub compatible: Vec<String>,
}

/// Longest `model` or `compatible` read; real ones are well under 200 bytes.
pub const MAX_PROPERTY_BYTES: usize = 4096;

impl DeviceTree {
    /// From the raw properties: `model` is a NUL-terminated string, `compatible` a list of
    /// NUL-separated strings. Bytes that are not UTF-8 are replaced; only the first
    /// [`MAX_PROPERTY_BYTES`] of each are read.
    pub fn from_bytes(model: Option<&[u8]>, compatible: Option<&[u8]>) -> DeviceTree {
        let cut = |b: &[u8]| b[..b.len().min(MAX_PROPERTY_BYTES)].to_vec();
        let model = model
            .map(|b| {
                let b = cut(b);
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                String::from_utf8_lossy(&b[..end]).trim().to_string()
            })
            .filter(|m| !m.is_empty());
        let compatible = compatible
            .map(|b| {
                cut(b)
                    .split(|&c| c == 0)
                    .map(|s| String::from_utf8_lossy(s).trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        DeviceTree { model, compatible }
    }

    pub fn is_empty(&self) -> bool {
        self.model.is_none() && self.compatible.is_empty()
    }
}

impl fmt::Display for DeviceTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no device tree");
        }
        match &self.model {
            Some(m) => write!(f, "model {m:?}")?,
            None => f.write_str("no model")?,
        }
        write!(f, ", compatible {:?}", self.compatible)
    }
}

/// How the profile was chosen.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Chosen {
    /// By `-board`.
    Flag,
    /// By `board` in a config file, at this `file:line:col`.
    ConfigFile(String),
    /// The device tree named it (`compatible "brcm,bcm2711"` or `model "..."`).
    DeviceTree(String),
    /// Nothing named a profile and none matches the device tree: `generic`.
    NoMatch,
}

/// The board profile this agent runs with, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    pub profile: Profile,
    pub chosen: Chosen,
    /// The machine's device tree (also read when `-board` chose: a variant without the
    /// hardware encoder is recognised by it).
    pub device_tree: DeviceTree,
}

impl Selection {
    /// `-board`, `config file`, `device tree` or `default`.
    pub fn source(&self) -> &'static str {
        match self.chosen {
            Chosen::Flag => "-board",
            Chosen::ConfigFile(_) => "config file",
            Chosen::DeviceTree(_) => "device tree",
            Chosen::NoMatch => "default",
        }
    }

    /// Why this profile, in a sentence's words.
    pub fn reason(&self) -> String {
        match &self.chosen {
            Chosen::Flag => format!("named by -board ({})", self.profile.origin),
            Chosen::ConfigFile(at) => {
                format!("named by \"board\" at {at} ({})", self.profile.origin)
            }
            Chosen::DeviceTree(by) => format!("the device tree's {by} matches"),
            Chosen::NoMatch => format!(
                "no board profile matches this machine ({}); the generic profile uses software encoders",
                self.device_tree
            ),
        }
    }

    /// The selection a config without a board and a machine without a matching device tree
    /// get.
    pub fn generic(device_tree: DeviceTree) -> Result<Selection, ConfigError> {
        Ok(Selection {
            profile: builtin::get("generic")?,
            chosen: Chosen::NoMatch,
            device_tree,
        })
    }
}

/// How a `board` value is read: a path (it has a `/` or ends in `.json`) or a built-in name.
pub fn is_path(value: &str) -> bool {
    value.contains('/') || value.ends_with(".json")
}

/// Why a named board could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectError {
    /// No built-in profile has this name; the message lists those that exist.
    Unknown(String),
    /// The profile file (or a built-in profile) is broken or unreadable.
    Profile(ConfigError),
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::Unknown(m) => f.write_str(m),
            SelectError::Profile(e) => write!(f, "{e}"),
        }
    }
}

/// The profile for `requested` (a name or a profile file, chosen as `how`), or else the one
/// that matches `dt`, or else `generic`.
pub fn select(
    requested: Option<(&str, Chosen)>,
    dt: &DeviceTree,
) -> Result<Selection, SelectError> {
    let profiles = builtin::all().map_err(SelectError::Profile)?;
    if let Some((value, chosen)) = requested {
        let profile = if is_path(value) {
            profile::load(Path::new(value)).map_err(SelectError::Profile)?
        } else {
            profiles
                .into_iter()
                .find(|p| p.name == value)
                .ok_or_else(|| {
                    SelectError::Unknown(format!(
                        "unknown board {value:?}: expected one of {}, or the path of a profile file (such as ./myboard.json)",
                        builtin::NAMES.join(", ")
                    ))
                })?
        };
        return Ok(Selection {
            profile,
            chosen,
            device_tree: dt.clone(),
        });
    }
    match match_device_tree(&profiles, dt) {
        Some((i, by)) => Ok(Selection {
            profile: profiles[i].clone(),
            chosen: Chosen::DeviceTree(by),
            device_tree: dt.clone(),
        }),
        None => Selection::generic(dt.clone()).map_err(SelectError::Profile),
    }
}

/// The profile the device tree names, and how: the machine's `compatible` strings are tried
/// most specific first against every profile's, then its `model` against the profiles'
/// model prefixes.
pub fn match_device_tree(profiles: &[Profile], dt: &DeviceTree) -> Option<(usize, String)> {
    for c in &dt.compatible {
        if let Some(i) = profiles.iter().position(|p| {
            p.matches
                .compatible
                .iter()
                .any(|m| m.eq_ignore_ascii_case(c))
        }) {
            return Some((i, format!("compatible {c:?}")));
        }
    }
    let model = dt.model.as_deref()?;
    profiles
        .iter()
        .position(|p| {
            p.matches
                .model
                .iter()
                .any(|m| model.starts_with(m.as_str()))
        })
        .map(|i| (i, format!("model {model:?}")))
}
