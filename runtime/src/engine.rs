//! The node's one wasmtime engine: configuration, the epoch ticker thread, the
//! shared linker, and loading (compiling or fetching from cache) components.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Linker;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::ComponentCache;
use crate::capability;
use crate::compile_worker::{self, WorkerError};
use crate::error::{Result, RuntimeError};
use crate::host::Host;
use crate::kind::{self, Kind};

/// Bytes of each pooled memory and table slot kept resident by default:
/// room for the pages a typical HTTP guest touches per request (a Rust
/// guest's stack and heap), at a bounded cost: at most this much per slot in
/// use or warm (wasmtime keeps up to 100 warm), and only the pages that were
/// touched. Each slot is still reset to its initial contents before reuse.
pub const KEEP_RESIDENT: usize = 1 << 20;

/// How the engine is set up. The defaults suit one node of a few GiB.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling instance allocator (fast instantiation; reserves address
    /// space up front). Off: on-demand allocation.
    pub pooling: bool,
    /// Most component instances alive at once (pooling only): running requests
    /// plus running commands across all pods.
    pub max_instances: u32,
    /// Largest one linear memory may be (pooling slot size), in bytes.
    pub max_memory_size: usize,
    /// Bytes of each linear memory and table slot kept resident when an
    /// instance ends (pooling only): its pages are reset in place instead of
    /// being handed back to the kernel, so the next instance in the slot
    /// takes no page faults and the node no TLB shootdowns. 0: every slot is
    /// reset with `madvise`, as wasmtime does by default. Default
    /// [`KEEP_RESIDENT`].
    pub keep_resident: usize,
    /// Interval of the epoch ticker: the granularity of time limits and of
    /// preemption of a spinning guest.
    pub epoch_tick: Duration,
    /// Compile in a child process running this program (the `skiff` binary,
    /// which answers [`compile_worker::SUBCOMMAND`]), so that the compiler's
    /// code and memory never stay in this one; `None` compiles in process,
    /// as a program embedding a node does by default.
    pub compile_with: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            pooling: true,
            max_instances: 1000,
            max_memory_size: 1 << 30,
            keep_resident: KEEP_RESIDENT,
            epoch_tick: Duration::from_millis(10),
            compile_with: None,
        }
    }
}

/// A compiled component and the kind of container it makes.
#[derive(Clone)]
pub struct Component {
    pub(crate) inner: wasmtime::component::Component,
    kind: Kind,
    digest: String,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("kind", &self.kind)
            .field("digest", &self.digest)
            .finish()
    }
}

impl Component {
    /// HTTP or command.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// `sha256:<hex>` of the component's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

/// Where a [`Engine::load`] got its compiled code from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// Compiled now.
    Compiled,
    /// Read from the on-disk cache.
    Cache,
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Inner {
    engine: wasmtime::Engine,
    config: EngineConfig,
    linker: Linker<Host>,
    cache: Option<ComponentCache>,
    epoch_tick: Duration,
    _ticker: Ticker,
}

/// The node's wasmtime engine. Cheap to clone; the epoch ticker stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Build the engine, its linker (every host capability's interfaces: all of
    /// WASI 0.2 and wasi:http), and start the epoch ticker thread.
    pub fn new(config: EngineConfig) -> Result<Self> {
        let mut c = Config::new();
        c.wasm_component_model(true);
        c.epoch_interruption(true);
        if config.pooling {
            let mut p = PoolingAllocationConfig::new();
            let n = config.max_instances.max(1);
            p.total_component_instances(n);
            // A Rust component has a handful of core instances, a memory or two
            // and a few tables; leave room for that per component instance.
            p.total_core_instances(n.saturating_mul(4));
            p.total_memories(n.saturating_mul(2));
            p.total_tables(n.saturating_mul(4));
            p.total_stacks(n);
            p.max_memory_size(config.max_memory_size);
            if config.keep_resident > 0 {
                p.linear_memory_keep_resident(config.keep_resident);
                p.table_keep_resident(config.keep_resident);
                // Reset only the pages an instance touched (Linux 6.7+).
                p.pagemap_scan(wasmtime::Enabled::Auto);
            }
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
        }
        let engine = wasmtime::Engine::new(&c).map_err(RuntimeError::Engine)?;

        let mut linker = Linker::new(&engine);
        capability::link(&mut linker).map_err(RuntimeError::Engine)?;

        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let engine = engine.clone();
            let stop = stop.clone();
            let tick = config.epoch_tick;
            std::thread::Builder::new()
                .name("skiff-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RuntimeError::Engine(wasmtime::Error::new(e)))?
        };
        let cache = config
            .cache_dir
            .as_deref()
            .map(|d| ComponentCache::new(d, &engine));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                config: config.clone(),
                linker,
                cache,
                epoch_tick: config.epoch_tick,
                _ticker: Ticker {
                    stop,
                    thread: Some(thread),
                },
            }),
        })
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// The epoch ticker's interval: how often a running guest is checked.
    pub(crate) fn epoch_tick(&self) -> Duration {
        self.inner.epoch_tick
    }

    /// Whether `component` links here: everything it imports is something
    /// the runtime provides (see `wit/README.md`). The error names what is
    /// missing.
    pub fn links(&self, component: &Component) -> Result<()> {
        self.linker()
            .instantiate_pre(&component.inner)
            .map(drop)
            .map_err(RuntimeError::Link)
    }

    pub(crate) fn linker(&self) -> &Linker<Host> {
        &self.inner.linker
    }

    /// The compiled artifact of `bytes`, as [`Engine::load`] would cache it;
    /// what a compiling child ([`compile_worker`]) hands back.
    pub fn compile_artifact(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        kind::check_is_component(bytes)?;
        self.inner
            .engine
            .precompile_component(bytes)
            .map_err(RuntimeError::Compile)
    }

    /// Compiles `bytes` (whose sha256 is `digest`): in a child process when
    /// the engine is set up so and the child can be run, else here; caches
    /// the result.
    fn compile(&self, bytes: &[u8], digest: &str) -> Result<wasmtime::component::Component> {
        let engine = &self.inner.engine;
        if let Some(program) = &self.inner.config.compile_with {
            match compile_worker::compile_in_child(program, &self.inner.config, bytes) {
                Ok(artifact) => return self.load_artifact(&artifact, digest),
                Err(WorkerError::Failed(message)) => {
                    return Err(RuntimeError::CompileWorker(message));
                }
                Err(e @ WorkerError::Spawn { .. }) => {
                    tracing::warn!(error = %e, "compiling in this process instead");
                }
            }
        }
        let c =
            wasmtime::component::Component::new(engine, bytes).map_err(RuntimeError::Compile)?;
        if let Some(cache) = &self.inner.cache {
            // A cache that cannot be written only costs a recompile later.
            if let Err(e) = cache.put(digest, &c) {
                tracing::warn!(error = %e, "could not cache compiled component");
            }
        }
        Ok(c)
    }

    /// A component from the artifact a compiling child made: through the
    /// disk cache when there is one (mapped from its file), else from memory.
    fn load_artifact(
        &self,
        artifact: &[u8],
        digest: &str,
    ) -> Result<wasmtime::component::Component> {
        let engine = &self.inner.engine;
        if let Some(cache) = &self.inner.cache {
            cache.put_artifact(digest, artifact)?;
            if let Some(c) = cache.get(engine, digest) {
                return Ok(c);
            }
        }
        // SAFETY: the artifact was made by this same program, run as a child
        // with this engine's settings (see `compile_worker`), and handed over
        // on a pipe only the two processes hold; wasmtime still checks its
        // header (version, target, flags) and refuses an incompatible one.
        unsafe { wasmtime::component::Component::deserialize(engine, artifact) }
            .map_err(RuntimeError::Compile)
    }

    /// Compile `bytes` (or fetch the compiled form from the disk cache) and detect
    /// its kind. Garbage, core modules and components that export neither HTTP nor
    /// `run` are refused.
    pub fn load(&self, bytes: &[u8]) -> Result<Component> {
        self.load_with_source(bytes).map(|(c, _)| c)
    }

    /// Like [`Engine::load`], also telling whether the cache was used.
    pub fn load_with_source(&self, bytes: &[u8]) -> Result<(Component, LoadSource)> {
        kind::check_is_component(bytes)?;
        let digest = hex::encode(Sha256::digest(bytes));
        let engine = &self.inner.engine;
        let cached = self
            .inner
            .cache
            .as_ref()
            .and_then(|c| c.get(engine, &digest));
        let (inner, source) = match cached {
            Some(c) => (c, LoadSource::Cache),
            None => (self.compile(bytes, &digest)?, LoadSource::Compiled),
        };
        let kind = kind::detect(engine, &inner)?;
        Ok((
            Component {
                inner,
                kind,
                digest: format!("sha256:{digest}"),
            },
            source,
        ))
    }
}
