//! A node compiles components in a child process (`skiff compile-component`),
//! so that the compiler's code and memory never stay in the node: the child
//! turns a component into an artifact, or says why not and fails, and a
//! node's pods run from what it made.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use skiff_testkit::cluster::skiff;
use skiff_testkit::samples::sample;

/// Runs the compiling child with `input` on its stdin.
fn compile(input: &[u8], args: &[&str]) -> Output {
    let mut child = Command::new(skiff())
        .arg("compile-component")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run skiff compile-component");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("wait for the child");
    // A child that refuses its arguments ends before it reads: a broken pipe.
    let written = writer.join().expect("writer");
    if output.status.success() {
        written.expect("write the component");
    }
    output
}

#[test]
fn the_compiling_child_makes_an_artifact_or_says_why_not() {
    let hello = sample("hello");
    let made = compile(&hello, &["--max-instances", "1000"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // wasmtime's artifacts are ELF images of the compiled code.
    assert!(made.stdout.starts_with(b"\x7fELF"), "not an artifact");
    assert!(made.stderr.is_empty());

    let garbage = compile(b"definitely not wasm", &[]);
    assert!(!garbage.status.success());
    assert!(garbage.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&garbage.stderr).trim(),
        "not a WebAssembly component: the bytes do not start with the wasm magic number"
    );

    // A component header over a body that is not one: the compiler's own words.
    let mut broken = hello[..8].to_vec();
    broken.extend_from_slice(&[0xff; 64]);
    let refused = compile(&broken, &[]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.starts_with("invalid component: "), "{message}");

    let bad_flag = compile(&hello, &["--max-instances", "many"]);
    assert!(!bad_flag.status.success());
    assert!(
        String::from_utf8_lossy(&bad_flag.stderr).contains("--max-instances"),
        "names the flag"
    );
}
