//! The browser half of the Paved UI, embedded: the hydration module built from `paved-ui`
//! (`wasm32-unknown-unknown`), its `wasm-bindgen` glue and the stylesheet. The control plane
//! serves them under `/pkg/`.

/// One embedded file: its name under `/pkg/`, content type and bytes.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// File name under `/pkg/`, e.g. `paved_ui.js`.
    pub name: &'static str,
    /// The `Content-Type` to serve it with.
    pub content_type: &'static str,
    /// The file's bytes.
    pub bytes: &'static [u8],
}

/// Every file of the browser half.
pub static ASSETS: &[Asset] = &[
    Asset {
        name: "paved_ui.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/pkg/paved_ui.js")),
    },
    Asset {
        name: "paved_ui_bg.wasm",
        content_type: "application/wasm",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/pkg/paved_ui_bg.wasm")),
    },
    Asset {
        name: "paved_ui.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../style/paved.css"),
    },
];

/// The asset called `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hydration_module_and_glue_are_embedded_and_consistent() {
        let wasm = asset("paved_ui_bg.wasm").expect("wasm embedded");
        assert_eq!(
            &wasm.bytes[..4],
            b"\0asm",
            "the module starts with the wasm magic"
        );
        let js = std::str::from_utf8(asset("paved_ui.js").expect("glue embedded").bytes)
            .expect("glue is UTF-8");
        assert!(
            js.contains("export function hydrate"),
            "the glue exports hydrate()"
        );
    }

    #[test]
    fn unknown_assets_are_not_found() {
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("").is_none());
    }
}
