//! The worlds in `wit/` are what the runtime serves: a component built for
//! each (its imports and exports as the world says; its code never runs)
//! links against the runtime's linker and is taken as the kind its world
//! names; a component importing an interface no world names does not link.

use std::path::Path;

use skiff_runtime::{Engine, EngineConfig, Kind};
use wit_component::{ComponentEncoder, StringEncoding, dummy_module, embed_component_metadata};
use wit_parser::{ManglingAndAbi, PackageId, Resolve};

/// A component with the imports and exports of `world` in `resolve`.
fn component_of(resolve: &Resolve, package: PackageId, world: &str) -> Vec<u8> {
    let world = resolve
        .select_world(&[package], Some(world))
        .unwrap_or_else(|e| panic!("world {world}: {e:#}"));
    let mut module = dummy_module(resolve, world, ManglingAndAbi::Standard32);
    embed_component_metadata(&mut module, resolve, world, StringEncoding::UTF8)
        .expect("embed the world");
    ComponentEncoder::default()
        .module(&module)
        .expect("a core module")
        .validate(true)
        .encode()
        .expect("a component")
}

fn skiff_worlds() -> (Resolve, PackageId) {
    let mut resolve = Resolve::default();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let (package, _) = resolve.push_dir(&wit).expect("wit/ parses");
    (resolve, package)
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        pooling: false,
        ..EngineConfig::default()
    })
    .expect("engine")
}

#[test]
fn every_world_in_wit_links_as_its_kind() {
    let (resolve, package) = skiff_worlds();
    let engine = engine();
    for (world, kind) in [("http-pod", Kind::Http), ("command-pod", Kind::Command)] {
        let component = engine
            .load(&component_of(&resolve, package, world))
            .unwrap_or_else(|e| panic!("{world} compiles: {e}"));
        assert_eq!(component.kind(), kind, "{world}");
        if let Err(e) = engine.links(&component) {
            panic!("{world} must link against the runtime: {e}");
        }
    }
}

#[test]
fn an_import_no_world_names_does_not_link() {
    let (mut resolve, _) = skiff_worlds();
    let package = resolve
        .push_str(
            "elsewhere.wit",
            "package test:elsewhere;
             interface store { get: func(key: string) -> option<string>; }
             world pod {
               import store;
               export wasi:http/incoming-handler@0.2.12;
             }",
        )
        .expect("test world parses");
    let engine = engine();
    let component = engine
        .load(&component_of(&resolve, package, "pod"))
        .expect("compiles");
    let err = engine
        .links(&component)
        .expect_err("an interface the runtime does not provide");
    assert!(err.to_string().contains("test:elsewhere/store"), "{err}");
}
