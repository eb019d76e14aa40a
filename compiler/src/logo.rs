//! Logos: `branding/{tenant}/logo.(svg|png|jpg|webp)` in the config repo.
//! The format is judged by magic bytes (the extension must agree), then
//! size and dimensions; an SVG must be free of scripts, event handlers and
//! external references. A logo travels embedded in `theme.json` as
//! `logo: {mediaType, width, height, bytes, sha256, data}` (data in
//! base64), so the registry and the browser see exactly what was checked,
//! and the registry checks it again on write.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};

use crate::limits::{LOGO_BYTES_MAX, LOGO_SIDE_PX_MAX, LOGO_SIDE_PX_MIN};
use crate::schema::THEME_FILE;
use crate::Problem;

/// The file extensions a logo may have.
pub const LOGO_EXTENSIONS: &[&str] = &["svg", "png", "jpg", "webp"];

/// A logo format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
    Jpeg,
    Webp,
}

impl Format {
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension {
            "svg" => Some(Format::Svg),
            "png" => Some(Format::Png),
            "jpg" => Some(Format::Jpeg),
            "webp" => Some(Format::Webp),
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Svg => "image/svg+xml",
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Webp => "image/webp",
        }
    }

    fn from_media_type(media_type: &str) -> Option<Self> {
        [Format::Svg, Format::Png, Format::Jpeg, Format::Webp]
            .into_iter()
            .find(|format| format.media_type() == media_type)
    }

    /// The format the bytes say they are.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Format::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Format::Webp)
        } else if std::str::from_utf8(bytes).is_ok_and(|text| text.contains("<svg")) {
            Some(Format::Svg)
        } else {
            None
        }
    }
}

/// A rule a logo broke: (rule id, message).
pub type Refusal = (&'static str, String);

/// Checks a logo file and returns its embedded form for `theme.logo`.
pub fn compile(extension: &str, bytes: &[u8]) -> Result<Value, Refusal> {
    let declared = Format::from_extension(extension)
        .ok_or_else(|| ("logo-format", format!("logo.{extension}: a logo is one of {}", LOGO_EXTENSIONS.join(", "))))?;
    let (width, height) = check(declared, bytes)?;
    Ok(json!({
        "mediaType": declared.media_type(),
        "width": width,
        "height": height,
        "bytes": bytes.len(),
        "sha256": proto::document::sha256_hex(bytes),
        "data": BASE64.encode(bytes),
    }))
}

/// Checks bytes that claim to be `declared`: magic bytes, size, dimensions
/// and (SVG) content. Returns the dimensions in pixels.
pub fn check(declared: Format, bytes: &[u8]) -> Result<(u32, u32), Refusal> {
    if bytes.len() > LOGO_BYTES_MAX {
        return Err(("logo-size", format!("{} bytes is over the limit of {LOGO_BYTES_MAX} bytes", bytes.len())));
    }
    let actual = Format::sniff(bytes);
    if actual != Some(declared) {
        let found = actual.map_or("no known image format".to_owned(), |format| format.media_type().to_owned());
        return Err(("logo-format", format!("declared {} but the content is {found}", declared.media_type())));
    }
    let dimensions = match declared {
        Format::Png => png_size(bytes),
        Format::Jpeg => jpeg_size(bytes),
        Format::Webp => webp_size(bytes),
        Format::Svg => {
            // Sniffing proved UTF-8.
            let text = std::str::from_utf8(bytes).map_err(|_| ("logo-format", "an SVG must be UTF-8".to_owned()))?;
            check_svg_content(text)?;
            svg_size(text)
        }
    };
    let (width, height) =
        dimensions.ok_or_else(|| ("logo-dimensions", "the image's width and height cannot be read".to_owned()))?;
    let range = LOGO_SIDE_PX_MIN..=LOGO_SIDE_PX_MAX;
    if !range.contains(&width) || !range.contains(&height) {
        return Err((
            "logo-dimensions",
            format!("{width}x{height} px: each side must be {LOGO_SIDE_PX_MIN} to {LOGO_SIDE_PX_MAX} px"),
        ));
    }
    Ok((width, height))
}

/// Checks `theme.logo` as the registry receives it: the data decodes, passes
/// [`check`], and agrees with the declared type, size, dimensions and hash.
pub fn check_embedded(logo: &Value) -> Result<(), Problem> {
    let refuse = |rule: &'static str, message: String| Problem::new(THEME_FILE, "/logo", rule, message);
    let media_type = logo["mediaType"].as_str().unwrap_or_default();
    let format = Format::from_media_type(media_type)
        .ok_or_else(|| refuse("logo-format", format!("mediaType {media_type:?} is not a logo format")))?;
    let data = logo["data"].as_str().unwrap_or_default();
    // Decoding is bounded: base64 of the largest logo.
    if data.len() > LOGO_BYTES_MAX.div_ceil(3) * 4 {
        return Err(refuse("logo-size", format!("data is over the limit of {LOGO_BYTES_MAX} bytes")));
    }
    let bytes = BASE64.decode(data).map_err(|error| refuse("base64", format!("data is not base64: {error}")))?;
    let (width, height) = check(format, &bytes).map_err(|(rule, message)| refuse(rule, message))?;
    let expected = json!({
        "mediaType": media_type,
        "width": width,
        "height": height,
        "bytes": bytes.len(),
        "sha256": proto::document::sha256_hex(&bytes),
        "data": data,
    });
    if logo != &expected {
        return Err(refuse(
            "logo-metadata",
            "mediaType, width, height, bytes and sha256 must describe data".to_owned(),
        ));
    }
    Ok(())
}

fn be16(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?])))
}

fn le16(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?])))
}

fn le24(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?, *bytes.get(at + 2)?, 0]))
}

fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let word = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    Some((word(16)?, word(20)?))
}

fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        while *bytes.get(at)? == 0xff && *bytes.get(at + 1)? == 0xff {
            at += 1;
        }
        if *bytes.get(at)? != 0xff {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        if marker == 0x01 || (0xd0..=0xd9).contains(&marker) {
            at += 2;
            continue;
        }
        let length = be16(bytes, at + 2)? as usize;
        // Start of frame: every SOFn except DHT (c4), JPG (c8) and DAC (cc).
        if (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker) {
            return Some((be16(bytes, at + 7)?, be16(bytes, at + 5)?));
        }
        at += 2 + length;
    }
}

fn webp_size(bytes: &[u8]) -> Option<(u32, u32)> {
    match bytes.get(12..16)? {
        b"VP8X" => Some((le24(bytes, 24)? + 1, le24(bytes, 27)? + 1)),
        b"VP8L" => {
            if *bytes.get(20)? != 0x2f {
                return None;
            }
            let bits = u32::from_le_bytes(bytes.get(21..25)?.try_into().ok()?);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        b"VP8 " => {
            if bytes.get(23..26)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            Some((le16(bytes, 26)? & 0x3fff, le16(bytes, 28)? & 0x3fff))
        }
        _ => None,
    }
}

/// Refuses scripts, event handlers, `javascript:` URLs, foreign objects,
/// entity declarations and any reference that leaves the file.
fn check_svg_content(text: &str) -> Result<(), Refusal> {
    let lower = text.to_ascii_lowercase();
    for (needle, what) in [
        ("<script", "a <script> element"),
        ("javascript:", "a javascript: URL"),
        ("<foreignobject", "a <foreignObject> element"),
        ("<!entity", "an entity declaration"),
        ("<!doctype", "a DOCTYPE (entities)"),
        ("@import", "a CSS @import"),
    ] {
        if lower.contains(needle) {
            return Err(("svg-script", format!("an SVG logo must not contain {what}")));
        }
    }
    let bytes = lower.as_bytes();
    for (at, _) in lower.match_indices("on") {
        let before = at.checked_sub(1).map(|before| bytes[before]);
        let name_end = lower[at + 2..].find(|c: char| !c.is_ascii_alphabetic()).map_or(lower.len(), |end| at + 2 + end);
        let after = lower[name_end..].trim_start();
        if before.is_some_and(|byte| byte.is_ascii_whitespace()) && name_end > at + 2 && after.starts_with('=') {
            return Err((
                "svg-script",
                format!("an SVG logo must not carry event handlers ({})", &lower[at..name_end]),
            ));
        }
    }
    for attribute in ["href", "src"] {
        for (at, _) in lower.match_indices(attribute) {
            let rest = lower[at + attribute.len()..].trim_start();
            let Some(value) = rest.strip_prefix('=').map(str::trim_start) else { continue };
            let value = value.trim_start_matches(['"', '\'']);
            if !value.starts_with('#') {
                return Err(("svg-external", "an SVG logo must not reference anything outside itself".to_owned()));
            }
        }
    }
    for (at, _) in lower.match_indices("url(") {
        let value = lower[at + 4..].trim_start().trim_start_matches(['"', '\'']);
        if !value.starts_with('#') {
            return Err(("svg-external", "an SVG logo must not reference anything outside itself".to_owned()));
        }
    }
    Ok(())
}

/// The root `<svg>`'s width and height attributes (numbers, optionally in
/// px), or else its viewBox.
fn svg_size(text: &str) -> Option<(u32, u32)> {
    let start = text.find("<svg")?;
    let tag = &text[start..start + text[start..].find('>')?];
    let attribute = |name: &str| -> Option<&str> {
        let mut search = 0;
        while let Some(found) = tag[search..].find(name) {
            let at = search + found;
            search = at + name.len();
            let preceded = tag[..at].ends_with(|c: char| c.is_ascii_whitespace());
            let rest = tag[at + name.len()..].trim_start();
            if let (true, Some(rest)) = (preceded, rest.strip_prefix('=')) {
                let rest = rest.trim_start();
                let quote = rest.chars().next()?;
                let value = &rest[1..];
                return Some(&value[..value.find(quote)?]);
            }
        }
        None
    };
    let number = |text: &str| {
        text.trim().trim_end_matches("px").parse::<f64>().ok().filter(|value| value.is_finite() && *value > 0.0)
    };
    if let (Some(width), Some(height)) = (attribute("width").and_then(number), attribute("height").and_then(number)) {
        return Some((width.round() as u32, height.round() as u32));
    }
    let view_box: Vec<f64> = attribute("viewBox")?
        .split([' ', ','])
        .filter(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect();
    match view_box.as_slice() {
        [_, _, width, height] if *width > 0.0 && *height > 0.0 => Some((width.round() as u32, height.round() as u32)),
        _ => None,
    }
}
