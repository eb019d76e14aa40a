//! Logos: `branding/{tenant}/logo.(svg|png|jpg|webp)` in the config repo.
//! The format is judged by magic bytes (the extension must agree), then
//! size and dimensions; an SVG must pass [`svg::check`]: drawing elements
//! and attributes only, no scripts, event handlers or external references. A logo travels embedded in `theme.json` as
//! `logo: {mediaType, width, height, bytes, sha256, data}` (data in
//! base64), so the registry and the browser see exactly what was checked,
//! and the registry checks it again on write.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};

use crate::document::{Problem, THEME_FILE};
use crate::limits::{LOGO_BYTES_MAX, LOGO_SIDE_PX_MAX, LOGO_SIDE_PX_MIN};

pub mod svg;

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

    /// The format the bytes say they are (imagesize reads the raster
    /// formats' headers).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match imagesize::image_type(bytes) {
            Ok(imagesize::ImageType::Png) => Some(Format::Png),
            Ok(imagesize::ImageType::Jpeg) => Some(Format::Jpeg),
            Ok(imagesize::ImageType::Webp) => Some(Format::Webp),
            _ if std::str::from_utf8(bytes).is_ok_and(|text| text.contains("<svg")) => Some(Format::Svg),
            _ => None,
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
        "sha256": crate::document::sha256_hex(bytes),
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
        Format::Png | Format::Jpeg | Format::Webp => imagesize::blob_size(bytes)
            .ok()
            .and_then(|size| Some((u32::try_from(size.width).ok()?, u32::try_from(size.height).ok()?))),
        Format::Svg => {
            // Sniffing proved UTF-8.
            let text = std::str::from_utf8(bytes).map_err(|_| ("logo-format", "an SVG must be UTF-8".to_owned()))?;
            svg::check(text)?
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
        "sha256": crate::document::sha256_hex(&bytes),
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
