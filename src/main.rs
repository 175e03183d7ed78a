//! `skiff`: Kubernetes for WebAssembly, in one binary.
//!
//! The binary is thin: each subcommand parses its arguments and calls into the
//! libraries (`skiff-control`, and later `skiff-node`).

mod apply;
mod client;
mod delete;
mod demo;
mod describe;
mod duration;
mod get;
mod logs;
mod manifest;
mod node;
mod printer;
mod push;
mod rollout;
mod scale;
mod secrets;
mod server;
mod token;
mod up;
mod version;

use clap::{Parser, Subcommand};

// glibc's malloc took a quarter of the CPU under concurrent API writes
// (benches/api_writes, perf); mimalloc is built for many small allocations
// across threads. It is built without transparent huge pages (Cargo.toml,
// feature `no_thp`): with them, the first touch of its arena made 2 MiB
// resident at a time, and an idle `skiff up` held 64 MiB instead of 41.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "Kubernetes for WebAssembly, in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a control plane: store, Kubernetes API server, controllers.
    Server(server::ServerArgs),
    /// Run the embedded default cluster in one process.
    Up(up::Args),
    /// Push a Wasm component to the cluster under NAME:TAG.
    Push(push::Args),
    Node(node::Args),
    // The commands below take their help from their `Args` docs (with examples).
    Apply(apply::Args),
    Get(get::Args),
    Describe(describe::Args),
    Delete(delete::Args),
    Logs(logs::Args),
    Scale(scale::Args),
    Rollout(rollout::Args),
    Version(version::Args),
    Token(token::Args),
    Secrets(secrets::Args),
    /// Compile a component read on stdin for a node (run by the node itself).
    #[command(name = "compile-component", hide = true)]
    CompileComponent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    // A node's compiling child: no async runtime, stdout is the artifact.
    if let Command::CompileComponent { args } = &cli.command {
        return skiff_runtime::compile_worker::main(args).into();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Up(args) => up::run(args).await,
            Command::Push(args) => push::run(args).await,
            Command::Node(args) => node::run(args).await,
            Command::Apply(args) => apply::run(args).await,
            Command::Get(args) => get::run(args).await,
            Command::Describe(args) => describe::run(args).await,
            Command::Delete(args) => delete::run(args).await,
            Command::Logs(args) => logs::run(args).await,
            Command::Scale(args) => scale::run(args).await,
            Command::Rollout(args) => rollout::run(args).await,
            Command::Version(args) => version::run(args).await,
            Command::Token(args) => token::run(args).await,
            Command::Secrets(args) => secrets::run(args).await,
            Command::CompileComponent { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // An API error reads as kubectl prints it: `Error from server (NotFound): ...`.
        Err(e) if e.is::<skiff_client::StatusError>() => {
            eprintln!("{e:#}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Where Skiff keeps its data when `--data-dir` is not given: `$SKIFF_DATA_DIR`,
/// else `~/.skiff`.
pub fn default_data_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("SKIFF_DATA_DIR") {
        return dir.into();
    }
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ".".into());
    home.join(".skiff")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks the whole command tree (unique names, groups) only when a
    /// subcommand is used; check it here for all of them.
    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
