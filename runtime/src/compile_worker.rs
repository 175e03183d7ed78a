//! Compiling components in a child process. Cranelift is most of the code a
//! node's binary pages in and most of the memory a compile allocates; a node
//! that compiles in a short-lived child (the same binary, run as
//! `<program> compile-component`) never holds either, so its resident memory
//! after a compile stays where it was before. A compiler crash or a component
//! that makes the compiler run wild ends the child, not the node.
//!
//! The protocol is the smallest that works: the component's bytes on the
//! child's stdin, the engine's settings as arguments, the compiled artifact
//! on its stdout (exit 0), or the error on its stderr (exit 1).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::engine::{Engine, EngineConfig};
use crate::error::RuntimeError;

/// The subcommand a compiling child is run with.
pub const SUBCOMMAND: &str = "compile-component";

/// Most bytes a component sent to a child may have (the API's own limit on a
/// pushed component is lower).
const MAX_COMPONENT_BYTES: u64 = 1 << 30;

/// Why a compile in a child did not give an artifact.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerError {
    /// The child could not be run at all: compile in process instead.
    #[error("run {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    /// The child ran and refused the component (or crashed); its message.
    #[error("{0}")]
    Failed(String),
}

/// Why the child did not write an artifact; printed on its stderr, which
/// [`compile_in_child`] hands on as [`WorkerError::Failed`].
#[derive(Debug, thiserror::Error)]
enum ChildError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("{flag}: {source}")]
    BadNumber {
        flag: &'static str,
        source: std::num::ParseIntError,
    },
    #[error("unknown argument {0:?}")]
    UnknownArgument(String),
    #[error("read the component: {0}")]
    Read(#[source] std::io::Error),
    /// The engine could not be set up, or the component does not compile.
    #[error(transparent)]
    Compile(#[from] RuntimeError),
    #[error("write the compiled component: {0}")]
    Write(#[source] std::io::Error),
}

/// Compiles `bytes` in a child running `program`, with `config`'s settings;
/// returns the serialized artifact.
pub(crate) fn compile_in_child(
    program: &Path,
    config: &EngineConfig,
    bytes: &[u8],
) -> Result<Vec<u8>, WorkerError> {
    let spawn = |source| WorkerError::Spawn {
        program: program.to_path_buf(),
        source,
    };
    let mut child = Command::new(program)
        .arg(SUBCOMMAND)
        .args(arguments(config))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("SKIFF_LOG", "error")
        .spawn()
        .map_err(spawn)?;
    // Written from its own thread: the child reads all of stdin before it
    // writes, but a pipe holds only so much.
    let writer = child.stdin.take().map(|mut stdin| {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || stdin.write_all(&bytes))
    });
    let output = child.wait_with_output().map_err(spawn)?;
    if let Some(writer) = writer
        && let Ok(Err(e)) = writer.join()
        && output.status.success()
    {
        return Err(WorkerError::Failed(format!(
            "send the component to the compiler: {e}"
        )));
    }
    if output.status.success() {
        return Ok(output.stdout);
    }
    let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Err(WorkerError::Failed(if message.is_empty() {
        format!("the compiler process ended with {}", output.status)
    } else {
        message
    }))
}

/// The engine settings that shape compiled code, as a child's arguments.
fn arguments(config: &EngineConfig) -> Vec<String> {
    let mut args = vec![
        "--max-instances".to_string(),
        config.max_instances.to_string(),
        "--max-memory-size".to_string(),
        config.max_memory_size.to_string(),
    ];
    if !config.pooling {
        args.push("--no-pooling".into());
    }
    args
}

/// The child's side: reads a component on stdin, compiles it with the
/// settings in `args` (as [`compile_in_child`] passes them) and writes the
/// artifact to stdout. Returns the process's exit code.
pub fn main(args: &[String]) -> u8 {
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn run(args: &[String]) -> Result<(), ChildError> {
    let mut config = EngineConfig {
        cache_dir: None,
        ..EngineConfig::default()
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| ChildError::MissingValue(name.to_string()))
        };
        let number = |flag: &'static str| move |source| ChildError::BadNumber { flag, source };
        match arg.as_str() {
            "--max-instances" => {
                config.max_instances = value(arg)?.parse().map_err(number("--max-instances"))?;
            }
            "--max-memory-size" => {
                config.max_memory_size =
                    value(arg)?.parse().map_err(number("--max-memory-size"))?;
            }
            "--no-pooling" => config.pooling = false,
            other => return Err(ChildError::UnknownArgument(other.to_string())),
        }
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_COMPONENT_BYTES)
        .read_to_end(&mut bytes)
        .map_err(ChildError::Read)?;
    let artifact = Engine::new(config)?.compile_artifact(&bytes)?;
    std::io::stdout()
        .lock()
        .write_all(&artifact)
        .map_err(ChildError::Write)
}
