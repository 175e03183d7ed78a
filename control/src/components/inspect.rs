//! Reading what a pushed `.wasm` is: a valid component, and what it exports.

use skiff_api::component::ComponentKind;
use wasmparser::{Encoding, Parser, Payload, Validator, WasmFeatures};

/// What a component offers and needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    pub kind: ComponentKind,
}

/// Why bytes are not a component Skiff can store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error("not a WebAssembly binary: it does not start with the \\0asm magic bytes")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("invalid WebAssembly component: {0}")]
    Invalid(String),
}

/// Validates `bytes` as a component and reads its top-level imports and exports.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, InspectError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(InspectError::NotWasm);
    }
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| InspectError::Invalid(e.to_string()))?;
        match payload {
            Payload::Version {
                encoding: Encoding::Module,
                ..
            } if depth == 0 => {
                return Err(InspectError::CoreModule);
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| InspectError::Invalid(e.to_string()))?;
                    exports.push(export.name.name.to_string());
                }
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| InspectError::Invalid(e.to_string()))?;
                    imports.push(import.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|e| InspectError::Invalid(e.to_string()))?;
    let kind = kind_of(&exports);
    Ok(Inspection {
        exports,
        imports,
        kind,
    })
}

/// HTTP if it exports `wasi:http/incoming-handler`, command if `wasi:cli/run`.
fn kind_of(exports: &[String]) -> ComponentKind {
    let has = |iface: &str| {
        exports
            .iter()
            .any(|e| e == iface || e.starts_with(&format!("{iface}@")))
    };
    if has("wasi:http/incoming-handler") {
        ComponentKind::Http
    } else if has("wasi:cli/run") {
        ComponentKind::Command
    } else {
        ComponentKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_garbage_and_modules() {
        assert_eq!(
            inspect(b"hello world, not wasm"),
            Err(InspectError::NotWasm)
        );
        let module = wat::parse_str("(module)").unwrap();
        assert_eq!(inspect(&module), Err(InspectError::CoreModule));
        let mut truncated = wat::parse_str("(component (core module (func)))").unwrap();
        truncated.truncate(truncated.len() - 3);
        assert!(matches!(inspect(&truncated), Err(InspectError::Invalid(_))));
    }

    #[test]
    fn reads_exports() {
        let wasm = wat::parse_str(
            r#"(component
                (core module $m (func (export "run") (result i32) i32.const 0))
                (core instance $i (instantiate $m))
                (func $run (result (result)) (canon lift (core func $i "run")))
                (instance $inst (export "run" (func $run)))
                (export "wasi:cli/run@0.2.0" (instance $inst))
            )"#,
        )
        .unwrap();
        let found = inspect(&wasm).unwrap();
        assert_eq!(found.exports, vec!["wasi:cli/run@0.2.0".to_string()]);
        assert_eq!(found.kind, ComponentKind::Command);
    }
}
