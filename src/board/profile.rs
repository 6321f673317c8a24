//! A board profile as its JSON file writes it (`board/<name>.json`), parsed and checked:
//! every problem is a [`ConfigError`] with the file, line, column and field.

use std::fmt;
use std::path::Path;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::config::locate::{Step, locate};
use crate::config::{ConfigError, VideoCodec};

/// One board: what it is, how to recognise it, its camera and its encoders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What `-board` takes: lower-case letters, digits and `-`.
    pub name: String,
    pub description: String,
    /// The Rust target triple of the board's builds.
    #[serde(default)]
    pub target: Option<String>,
    /// How the device tree names boards this profile is for.
    #[serde(rename = "match", default)]
    pub matches: Match,
    /// The camera a `v4l2` stream uses when it names no device, size or rate.
    #[serde(default)]
    pub camera: Option<Camera>,
    #[serde(default)]
    pub encoders: Encoders,
    /// Variants of the board that lack the hardware encoders.
    #[serde(default)]
    pub no_hardware_encoder: Option<NoHardware>,
    #[serde(default)]
    pub notes: Vec<String>,
    /// Where the profile came from: `built in` or the file's path (not in the file).
    #[serde(skip)]
    pub origin: String,
}

/// Device-tree names of the boards a profile is for. A `compatible` entry matches one of
/// the device tree's `compatible` strings exactly; a `model` entry is a prefix of its
/// `model`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub compatible: Vec<String>,
    #[serde(default)]
    pub model: Vec<String>,
}

/// The default camera: device node and the mode asked of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    #[serde(default)]
    pub note: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encoders {
    #[serde(default)]
    pub h264: CodecEncoders,
    #[serde(default)]
    pub vp8: CodecEncoders,
}

impl Encoders {
    pub fn of(&self, codec: VideoCodec) -> &CodecEncoders {
        match codec {
            VideoCodec::H264 => &self.h264,
            VideoCodec::Vp8 => &self.vp8,
        }
    }
}

/// The encoders of one codec: hardware ones in order of preference (the first one this
/// GStreamer has is used), and the software fallback.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecEncoders {
    #[serde(default)]
    pub hardware: Vec<EncoderEntry>,
    /// The software encoder: absent, the built-in one (`vp8enc`, `x264enc` tuned for live);
    /// without `element`, or with the built-in element, its `properties` are laid over the
    /// built-in ones (e.g. `{"threads": 4}`); another element is taken as written.
    #[serde(default)]
    pub software: Option<EncoderEntry>,
    #[serde(default)]
    pub note: String,
}

/// A GStreamer encoder element and how to feed it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderEntry {
    #[serde(default)]
    pub element: String,
    /// In order; values may hold the placeholders of [`PLACEHOLDERS`].
    #[serde(
        default,
        deserialize_with = "ordered_properties",
        serialize_with = "properties_as_object"
    )]
    pub properties: Vec<(String, String)>,
    /// The element that converts raw video for the encoder (default `videoconvert`).
    #[serde(default)]
    pub convert: Option<String>,
    /// Caps between the converter and the encoder, such as
    /// `video/x-raw(memory:NVMM),format=NV12`.
    #[serde(default)]
    pub input_caps: Option<String>,
    /// Caps the encoder's output must have (default: `video/x-vp8`, or H.264 constrained
    /// baseline).
    #[serde(default)]
    pub output_caps: Option<String>,
    #[serde(default)]
    pub note: String,
}

/// Board variants without the hardware encoders, by device-tree `compatible`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoHardware {
    pub compatible: Vec<String>,
    pub reason: String,
}

/// What encoder property values may say, replaced from each stream: bit/s, kbit/s, frames
/// per second, frames between keyframes.
pub const PLACEHOLDERS: [&str; 4] = ["{bitrate}", "{bitrate_kbps}", "{fps}", "{keyframe_frames}"];

/// Longest profile text accepted (the built-in ones are about 3 KiB).
pub const MAX_PROFILE_BYTES: usize = 64 << 10;

/// Parses and checks a profile; `name` is the file it came from, for errors.
pub fn parse(name: &Path, text: &str) -> Result<Profile, ConfigError> {
    if text.len() > MAX_PROFILE_BYTES {
        return Err(ConfigError {
            file: Some(name.into()),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!(
                "a board profile of {} bytes is over the {MAX_PROFILE_BYTES}-byte limit",
                text.len()
            ),
        });
    }
    let mut p: Profile = crate::config::parse_json(
        name,
        text,
        "expected a board profile, a JSON object such as {\"name\": \"myboard\", \"description\": \"...\"}",
    )?;
    Check { name, text }.profile(&p)?;
    p.origin = name.display().to_string();
    Ok(p)
}

/// Reads and parses the profile file at `path`.
pub fn load(path: &Path) -> Result<Profile, ConfigError> {
    let text = crate::config::read_file(path)?;
    parse(path, &text)
}

/// The checks after parsing, each error at the value's position.
struct Check<'a> {
    name: &'a Path,
    text: &'a str,
}

impl Check<'_> {
    fn err(&self, path: &[Step], message: impl Into<String>) -> ConfigError {
        let (line, column) = locate(self.text, path);
        let mut field = String::new();
        for step in path {
            match step {
                Step::Key(k) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(k);
                }
                Step::Index(i) => field.push_str(&format!("[{i}]")),
            }
        }
        ConfigError {
            file: Some(self.name.into()),
            line,
            column,
            field,
            message: message.into(),
        }
    }

    fn profile(&self, p: &Profile) -> Result<(), ConfigError> {
        let key = |k: &str| vec![Step::Key(k.into())];
        if !is_board_name(&p.name) {
            return Err(self.err(
                &key("name"),
                format!(
                    "board name {:?}: expected 1-32 lower-case letters, digits or '-'",
                    p.name
                ),
            ));
        }
        if p.description.trim().is_empty() {
            return Err(self.err(&key("description"), "a profile needs a description"));
        }
        if let Some(t) = &p.target
            && !is_triple(t)
        {
            return Err(self.err(
                &key("target"),
                format!("target {t:?}: expected a Rust target triple such as \"aarch64-unknown-linux-gnu\""),
            ));
        }
        for (list, k) in [
            (&p.matches.compatible, "compatible"),
            (&p.matches.model, "model"),
        ] {
            for (i, s) in list.iter().enumerate() {
                if s.is_empty() || s.contains('\0') {
                    let at = [
                        Step::Key("match".into()),
                        Step::Key(k.into()),
                        Step::Index(i),
                    ];
                    return Err(self.err(
                        &at,
                        format!("{s:?}: expected a non-empty string without NUL"),
                    ));
                }
            }
        }
        if let Some(c) = &p.camera {
            self.camera(c)?;
        }
        for codec in [VideoCodec::H264, VideoCodec::Vp8] {
            let at = vec![
                Step::Key("encoders".into()),
                Step::Key(codec.as_str().into()),
            ];
            let encs = p.encoders.of(codec);
            for (i, e) in encs.hardware.iter().enumerate() {
                let mut at = at.clone();
                at.extend([Step::Key("hardware".into()), Step::Index(i)]);
                if e.element.is_empty() {
                    return Err(self.err(&at, "a hardware encoder needs an \"element\""));
                }
                self.entry(e, codec, &at)?;
            }
            if let Some(e) = &encs.software {
                let mut at = at.clone();
                at.push(Step::Key("software".into()));
                self.entry(e, codec, &at)?;
            }
        }
        if let Some(n) = &p.no_hardware_encoder {
            let at = key("no_hardware_encoder");
            if n.compatible.is_empty() || n.compatible.iter().any(|c| c.is_empty()) {
                return Err(self.err(
                    &at,
                    "\"compatible\" must list one or more device-tree compatible strings",
                ));
            }
            if n.reason.trim().is_empty() {
                return Err(self.err(
                    &at,
                    "\"reason\" must say why those variants have no hardware encoder",
                ));
            }
        }
        Ok(())
    }

    fn camera(&self, c: &Camera) -> Result<(), ConfigError> {
        let at = |k: &str| vec![Step::Key("camera".into()), Step::Key(k.into())];
        if !c.device.starts_with("/dev/") || c.device.contains('\0') {
            return Err(self.err(
                &at("device"),
                format!(
                    "camera device {:?}: expected a path such as \"/dev/video0\"",
                    c.device
                ),
            ));
        }
        for (v, k, range) in [
            (c.width, "width", 16..=4096),
            (c.height, "height", 16..=4096),
            (c.fps, "fps", 1..=120),
        ] {
            if !range.contains(&v) {
                return Err(self.err(
                    &at(k),
                    format!(
                        "{v} is out of range: expected {}-{}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn entry(&self, e: &EncoderEntry, codec: VideoCodec, at: &[Step]) -> Result<(), ConfigError> {
        let sub = |k: &str| {
            let mut v = at.to_vec();
            v.push(Step::Key(k.into()));
            v
        };
        if !e.element.is_empty() && !is_gst_name(&e.element) {
            return Err(self.err(
                &sub("element"),
                format!(
                    "element {:?}: expected a GStreamer element name (a letter, then letters, digits, '-' or '_')",
                    e.element
                ),
            ));
        }
        for (k, v) in &e.properties {
            let at = {
                let mut p = sub("properties");
                p.push(Step::Key(k.clone()));
                p
            };
            if !is_gst_name(k) {
                return Err(self.err(
                    &at,
                    format!("property {k:?}: expected a GStreamer property name (a letter, then letters, digits, '-' or '_')"),
                ));
            }
            if let Some(unknown) = unknown_placeholder(v) {
                return Err(self.err(
                    &at,
                    format!(
                        "unknown placeholder {unknown} in {v:?}: expected one of {}",
                        PLACEHOLDERS.join(", ")
                    ),
                ));
            }
        }
        if let Some(c) = &e.convert
            && !is_gst_name(c)
        {
            return Err(self.err(
                &sub("convert"),
                format!(
                    "convert {c:?}: expected a GStreamer element name such as \"videoconvert\""
                ),
            ));
        }
        let media = match codec {
            VideoCodec::H264 => "video/x-h264",
            VideoCodec::Vp8 => "video/x-vp8",
        };
        for (caps, k, want) in [
            (&e.input_caps, "input_caps", "video/x-raw"),
            (&e.output_caps, "output_caps", media),
        ] {
            if let Some(c) = caps
                && !(is_caps_text(c)
                    && (c == want
                        || c.starts_with(&format!("{want},"))
                        || c.starts_with(&format!("{want}("))))
            {
                return Err(self.err(
                    &sub(k),
                    format!(
                        "caps {c:?}: expected {want} caps such as \"{want},...\" (letters, digits and / , = . : _ ( ) - only)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A board name: 1-32 lower-case letters, digits or `-`.
pub fn is_board_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_triple(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// An element or property name GStreamer accepts: a letter, then letters, digits, `-`, `_`.
pub fn is_gst_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Caps text that stays one caps string inside a `gst-launch-1.0` line: no spaces, quotes,
/// `!` or `;`.
pub fn is_caps_text(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b',' | b'=' | b'.' | b':' | b'_' | b'(' | b')' | b'-'
                )
        })
}

/// The first `{word}` in `value` that is not a placeholder (GStreamer's `{ a, b }` lists,
/// with spaces or commas inside, are left alone).
fn unknown_placeholder(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let word = &after[..close];
        let token = format!("{{{word}}}");
        if !word.is_empty()
            && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !PLACEHOLDERS.contains(&token.as_str())
        {
            return Some(token);
        }
        rest = &after[close + 1..];
    }
    None
}

/// The properties as the JSON object they were read from, in their order.
fn properties_as_object<S: serde::Serializer>(
    props: &[(String, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(props.iter().map(|(k, v)| (k, v)))
}

/// A JSON object of properties, in the file's order; values are strings, numbers or
/// booleans (kept as GStreamer would read them); a key given twice is an error.
fn ordered_properties<'de, D: de::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, String)>, D::Error> {
    struct Props;
    impl<'de> Visitor<'de> for Props {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(
                "an object of GStreamer properties, such as {\"bitrate\": \"{bitrate_kbps}\"}",
            )
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<(String, String)> = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(de::Error::custom(format!(
                            "property {k:?}: {other} is not a string, number or boolean"
                        )));
                    }
                };
                if out.iter().any(|(seen, _)| *seen == k) {
                    return Err(de::Error::custom(format!("property {k:?} is given twice")));
                }
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_map(Props)
}
