//! Skiff runtime: the only crate that will know wasmtime. It turns a component plus a
//! pod container spec into a running HTTP handler or command. Built out in issue 3.
