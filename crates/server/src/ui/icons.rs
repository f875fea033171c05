//! Provider icons, drawn for this project as small SVGs (no third-party artwork). They are
//! inlined into buttons, decorative (`aria-hidden`): the button's text names the provider.

const GITHUB: &str = include_str!("icons/github.svg");
const DINGTALK: &str = include_str!("icons/dingtalk.svg");
const VK: &str = include_str!("icons/vk.svg");
const GENERIC: &str = include_str!("icons/generic.svg");

/// The icon for a provider type (`github`, `dingtalk`, `vk`, `vkid`, …); a key for the rest.
pub fn for_type(provider_type: &str) -> &'static str {
    match provider_type {
        "github" => GITHUB,
        "dingtalk" => DINGTALK,
        "vk" | "vkid" => VK,
        _ => GENERIC,
    }
    .trim()
}

#[cfg(test)]
mod tests {
    #[test]
    fn icons_are_decorative_svg_without_style_or_script() {
        for svg in [super::GITHUB, super::DINGTALK, super::VK, super::GENERIC] {
            assert!(svg.trim_start().starts_with("<svg"), "{svg}");
            assert!(svg.contains("aria-hidden=\"true\""), "{svg}");
            // CSP: no inline style attributes and no script inside the markup.
            assert!(!svg.contains("style") && !svg.contains("<script"), "{svg}");
        }
    }
}
