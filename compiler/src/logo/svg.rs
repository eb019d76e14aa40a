//! SVG logos, judged by an XML tokenizer (quick-xml) against allowlists of
//! elements and attributes: whatever is not a drawing primitive (scripts,
//! foreign objects, images, event handlers, processing instructions, DTDs)
//! is refused, and every reference (`href`, `url(…)`) must stay inside the
//! file. One pass over the bytes: time is linear in the logo's size.

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::XmlVersion;

use crate::limits::SVG_DEPTH_MAX;

/// A rule an SVG broke: (rule id, message).
pub type Refusal = (&'static str, String);

/// The elements a logo may use: shapes, text, paint servers, structure and
/// filters. Anything else (`script`, `foreignObject`, `image`, `iframe`,
/// `animate`, `set`, …) is refused.
pub const ELEMENTS: &[&str] = &[
    "svg",
    "g",
    "defs",
    "symbol",
    "use",
    "title",
    "desc",
    "metadata",
    "style",
    "path",
    "rect",
    "circle",
    "ellipse",
    "line",
    "polyline",
    "polygon",
    "text",
    "tspan",
    "textPath",
    "linearGradient",
    "radialGradient",
    "stop",
    "pattern",
    "clipPath",
    "mask",
    "marker",
    "filter",
    "feBlend",
    "feColorMatrix",
    "feComposite",
    "feFlood",
    "feGaussianBlur",
    "feMerge",
    "feMergeNode",
    "feOffset",
    "feMorphology",
    "feDropShadow",
];

/// The attributes a logo may use: geometry, presentation, text, paint
/// servers and namespaces (`on…` handlers are never among them).
pub const ATTRIBUTES: &[&str] = &[
    "xmlns",
    "xmlns:xlink",
    "xml:space",
    "version",
    "id",
    "class",
    "style",
    "width",
    "height",
    "viewBox",
    "preserveAspectRatio",
    "x",
    "y",
    "x1",
    "y1",
    "x2",
    "y2",
    "cx",
    "cy",
    "r",
    "rx",
    "ry",
    "fx",
    "fy",
    "d",
    "points",
    "pathLength",
    "transform",
    "fill",
    "fill-opacity",
    "fill-rule",
    "stroke",
    "stroke-width",
    "stroke-linecap",
    "stroke-linejoin",
    "stroke-miterlimit",
    "stroke-dasharray",
    "stroke-dashoffset",
    "stroke-opacity",
    "opacity",
    "color",
    "display",
    "visibility",
    "clip-path",
    "clip-rule",
    "mask",
    "filter",
    "font-family",
    "font-size",
    "font-weight",
    "font-style",
    "letter-spacing",
    "text-anchor",
    "dominant-baseline",
    "alignment-baseline",
    "dx",
    "dy",
    "rotate",
    "textLength",
    "lengthAdjust",
    "offset",
    "stop-color",
    "stop-opacity",
    "gradientUnits",
    "gradientTransform",
    "spreadMethod",
    "patternUnits",
    "patternTransform",
    "patternContentUnits",
    "clipPathUnits",
    "maskUnits",
    "maskContentUnits",
    "filterUnits",
    "primitiveUnits",
    "markerWidth",
    "markerHeight",
    "refX",
    "refY",
    "orient",
    "marker-start",
    "marker-mid",
    "marker-end",
    "href",
    "xlink:href",
    "in",
    "in2",
    "result",
    "mode",
    "operator",
    "k1",
    "k2",
    "k3",
    "k4",
    "values",
    "type",
    "stdDeviation",
    "flood-color",
    "flood-opacity",
    "radius",
    "mix-blend-mode",
    "isolation",
    "role",
    "aria-label",
    "aria-hidden",
    "focusable",
    "shape-rendering",
    "text-rendering",
    "image-rendering",
    "vector-effect",
    "paint-order",
];

/// The predefined XML entities (and character references) are the only
/// references an SVG may use: it has no DTD to declare others.
const PREDEFINED_ENTITIES: &[&str] = &["lt", "gt", "amp", "apos", "quot"];

/// Checks an SVG document and returns the root's width and height in pixels
/// (its `width` and `height` attributes, optionally in px, or else its
/// `viewBox`); `None` when neither can be read.
pub fn check(text: &str) -> Result<Option<(u32, u32)>, Refusal> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut size = None;
    let mut root_seen = false;
    let mut in_style = false;
    loop {
        let event = reader.read_event().map_err(|error| {
            ("svg-syntax", format!("not well-formed XML at byte {}: {error}", reader.buffer_position()))
        })?;
        match event {
            Event::Start(element) | Event::Empty(element) if depth == 0 && root_seen => {
                let name = element.name();
                return Err(("svg-syntax", format!("<{}> after the root element: an SVG has one root", name.as_ref())));
            }
            Event::Start(element) => {
                let name = check_element(&element, depth)?;
                if depth == 0 {
                    size = root_size(&element)?;
                    root_seen = true;
                }
                in_style = name == "style";
                depth += 1;
                if depth > SVG_DEPTH_MAX {
                    return Err(("svg-depth", format!("elements nest deeper than {SVG_DEPTH_MAX} levels")));
                }
            }
            Event::Empty(element) => {
                check_element(&element, depth)?;
                if depth == 0 {
                    size = root_size(&element)?;
                    root_seen = true;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                in_style = false;
            }
            Event::Text(content) if in_style => check_css(&content.xml_content(XmlVersion::Implicit1_0))?,
            Event::CData(content) if in_style => check_css(&content.xml_content(XmlVersion::Implicit1_0))?,
            Event::Text(content) if depth == 0 && !content.xml_content(XmlVersion::Implicit1_0).trim().is_empty() => {
                return Err(("svg-syntax", "text outside the root element".to_owned()));
            }
            Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::Decl(_) => {}
            Event::GeneralRef(reference) => {
                let name: &str = reference.as_ref();
                if !reference.is_char_ref() && !PREDEFINED_ENTITIES.contains(&name) {
                    return Err(("svg-script", format!("an SVG logo must not use the entity &{name};")));
                }
            }
            Event::DocType(_) => {
                return Err(("svg-script", "an SVG logo must not contain a DOCTYPE (entity declarations)".to_owned()))
            }
            Event::PI(_) => {
                return Err(("svg-script", "an SVG logo must not contain processing instructions".to_owned()))
            }
            Event::Eof => break,
        }
    }
    if !root_seen {
        return Err(("svg-syntax", "no root element".to_owned()));
    }
    Ok(size)
}

/// Checks one element's name and attributes; returns its name.
fn check_element<'a>(element: &'a BytesStart<'_>, depth: usize) -> Result<&'a str, Refusal> {
    let name: &str = element.name().0;
    if depth == 0 && name != "svg" {
        return Err(("svg-syntax", format!("the root element is <{name}>, not <svg>")));
    }
    match name {
        _ if ELEMENTS.contains(&name) => {}
        "script" => return Err(("svg-script", "an SVG logo must not contain a <script> element".to_owned())),
        "foreignObject" => {
            return Err(("svg-script", "an SVG logo must not contain a <foreignObject> element".to_owned()))
        }
        _ => {
            let message = format!("<{name}> is not an element a logo may use (shapes, text, gradients, filters)");
            return Err(("svg-element", message));
        }
    }
    // Duplicate attributes are a syntax error; with the allowlist, an element
    // has at most as many attributes as the list has names.
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|error| ("svg-syntax", format!("<{name}>: {error}")))?;
        check_attribute(name, &attribute)?;
    }
    Ok(name)
}

fn check_attribute(element: &str, attribute: &Attribute<'_>) -> Result<(), Refusal> {
    let key: &str = attribute.key.as_ref();
    if key.len() > 2 && key[..2].eq_ignore_ascii_case("on") {
        return Err(("svg-script", format!("an SVG logo must not carry event handlers ({key})")));
    }
    if !ATTRIBUTES.contains(&key) {
        return Err(("svg-attribute", format!("<{element} {key}=…> is not an attribute a logo may use")));
    }
    let value = attribute
        .normalized_value(XmlVersion::Implicit1_0)
        .map_err(|error| ("svg-syntax", format!("<{element} {key}=…>: {error}")))?;
    if key == "href" || key == "xlink:href" {
        if !value.trim_start().starts_with('#') {
            return Err(external());
        }
    } else {
        check_css(&value)?;
    }
    Ok(())
}

fn external() -> Refusal {
    ("svg-external", "an SVG logo must not reference anything outside itself".to_owned())
}

/// CSS (a `<style>` element or a `style` or presentation attribute): no
/// `@import`, no `expression(`, every `url(…)` a fragment of this file.
fn check_css(css: &str) -> Result<(), Refusal> {
    let lower = css.to_ascii_lowercase();
    if lower.contains("@import") {
        return Err(("svg-external", "an SVG logo must not contain a CSS @import".to_owned()));
    }
    if lower.contains("javascript:") || lower.contains("expression(") {
        return Err(("svg-script", "an SVG logo must not contain a javascript: URL or CSS expression".to_owned()));
    }
    for (at, _) in lower.match_indices("url(") {
        let value = lower[at + 4..].trim_start().trim_start_matches(['"', '\'']);
        if !value.starts_with('#') {
            return Err(external());
        }
    }
    Ok(())
}

/// The root's size: width and height, or else its viewBox.
fn root_size(root: &BytesStart<'_>) -> Result<Option<(u32, u32)>, Refusal> {
    let attribute = |name: &str| -> Result<Option<String>, Refusal> {
        match root.try_get_attribute(name) {
            Ok(Some(attribute)) => {
                Ok(attribute.normalized_value(XmlVersion::Implicit1_0).ok().map(|value| value.into_owned()))
            }
            Ok(None) => Ok(None),
            Err(error) => Err(("svg-syntax", format!("<svg>: {error}"))),
        }
    };
    let number = |text: &str| {
        text.trim().trim_end_matches("px").parse::<f64>().ok().filter(|value| value.is_finite() && *value > 0.0)
    };
    let pixels = |value: f64| value.round().min(f64::from(u32::MAX)) as u32;
    let (width, height) = (attribute("width")?, attribute("height")?);
    if let (Some(width), Some(height)) = (width.as_deref().and_then(number), height.as_deref().and_then(number)) {
        return Ok(Some((pixels(width), pixels(height))));
    }
    let Some(view_box) = attribute("viewBox")? else { return Ok(None) };
    let parts: Vec<f64> =
        view_box.split([' ', ',']).filter(|part| !part.is_empty()).filter_map(|part| part.parse().ok()).collect();
    Ok(match parts.as_slice() {
        [_, _, width, height] if *width > 0.0 && *height > 0.0 && width.is_finite() && height.is_finite() => {
            Some((pixels(*width), pixels(*height)))
        }
        _ => None,
    })
}
