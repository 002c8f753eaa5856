//! Choosing where the network runs: the CUDA GPU when there is one, else the CPU.

use serde::{Deserialize, Serialize};
use tch::Device;

use super::{EngineError, Result};

/// Where to run the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The first CUDA GPU when libtorch sees one, otherwise the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl DeviceChoice {
    /// Resolves the choice to a device; asking for CUDA where there is none is an error.
    pub fn resolve(self) -> Result<Device> {
        match self {
            Self::Auto => Ok(Device::cuda_if_available()),
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            Self::Cuda => Err(EngineError::Device(
                "no CUDA GPU is available to libtorch; use --device cpu (or auto)".into(),
            )),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

/// A description for people: "CPU (2 threads)" or "CUDA GPU: NVIDIA H100 80GB HBM3".
pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(ordinal) => format!("CUDA GPU: {}", cuda_device_name(ordinal)),
        _ => format!("CPU ({} threads)", tch::get_num_threads()),
    }
}

/// The GPU's marketing name. libtorch's C API that tch wraps does not expose device
/// properties, so we read what the NVIDIA driver publishes under /proc.
fn cuda_device_name(ordinal: usize) -> String {
    let mut names: Vec<(String, String)> = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let text = std::fs::read_to_string(entry.path().join("information")).ok()?;
            let model = text
                .lines()
                .find_map(|line| line.strip_prefix("Model:"))?
                .trim()
                .to_string();
            Some((entry.file_name().to_string_lossy().into_owned(), model))
        })
        .collect();
    names.sort(); // by PCI bus id, the order CUDA numbers devices in by default
    names
        .into_iter()
        .nth(ordinal)
        .map_or_else(|| format!("device {ordinal}"), |(_, model)| model)
}

/// Runs libtorch work, turning its panics (how tch reports C++ exceptions such as CUDA
/// out-of-memory) into an error the caller can show.
pub fn guard_libtorch<T>(work: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "unknown error".into());
        let first_line = message.lines().next().unwrap_or_default().to_string();
        let hint = if message.contains("out of memory") {
            " (the GPU ran out of memory: lower the batch size or the image size)"
        } else {
            ""
        };
        EngineError::Device(format!("libtorch failed: {first_line}{hint}"))
    })
}

/// The OpenMP setting that makes libtorch's threads stop spinning soon when they wait for
/// each other: libgomp's spin count (its default is 300 000 turns before a waiting thread
/// sleeps).
pub const OPENMP_SPIN_COUNT: (&str, &str) = ("GOMP_SPINCOUNT", "10000");
/// Settings a person may have chosen; when one is set, Likeness leaves the waiting alone.
const OPENMP_WAIT_SETTINGS: [&str; 2] = ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"];

/// Starts the program again with [`OPENMP_SPIN_COUNT`] set, unless a wait setting is set
/// already (a person's own choice stands). Returns only when one is set, or when starting
/// again failed (the program then goes on as it is).
///
/// libtorch's OpenMP threads meet at a barrier after every operation, and by default a
/// thread that arrives first spins there for 300 000 turns. On a machine whose cores are
/// busy with other programs the thread it waits for is not running, so the spinning one
/// burns the time slice that thread needed: beside two busy processes on 2 cores, a 60-s run
/// trained 8 to 28 steps spinning, 76 with 10 000 turns and 89 to 103 sleeping at once
/// (`OMP_WAIT_POLICY=PASSIVE`). On a quiet machine sleeping at once cost a fifth of the
/// steps (about 167 against 210), 10 000 turns about a tenth at most (190, within the
/// runs' spread): the short spin keeps most of both (`scripts/busy_bench.sh`,
/// docs/benchmarks.md "A busy machine"). libgomp reads the setting once, when it is loaded
/// with libtorch before `main` runs, so it can only be set for a new process image. Call
/// it first thing in `main`.
pub fn openmp_threads_spin_briefly() {
    if OPENMP_WAIT_SETTINGS
        .iter()
        .any(|name| std::env::var_os(name).is_some())
    {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let Ok(program) = std::env::current_exe() else {
            return;
        };
        let (name, value) = OPENMP_SPIN_COUNT;
        let mut args = std::env::args_os();
        let shown_name = args
            .next()
            .unwrap_or_else(|| program.clone().into_os_string());
        // `exec` replaces this process (same id, same terminal); it returns only on failure.
        let _failed = std::process::Command::new(program)
            .arg0(shown_name)
            .args(args)
            .env(name, value)
            .exec();
    }
}

/// Makes the C allocator keep freed memory for reuse instead of handing every large
/// block back to the system. libtorch allocates each activation anew and frees it
/// within the step; glibc serves blocks over its mmap threshold with `mmap` and unmaps
/// them on `free`, so every step paid for fresh pages (page faults: system time as large
/// as the arithmetic's). Kept, the pages are reused: on this project's 2-core machine the
/// default preset's forward ran 2.7 times and its training steps 1.5 times as fast, for
/// about a fifth more peak memory (docs/benchmarks.md, "Freed memory kept"). Call it
/// first thing in `main`, before threads start; [`release_free_memory`] gives the
/// memory back after a job.
#[allow(unsafe_code)] // two calls into glibc
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's tuning; it is called before other threads run.
    unsafe {
        // No block is served by mmap (each would be unmapped on free)...
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // ...and the heap's free top is not trimmed after every large free.
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Returns the memory freed since the last job to the system (what
/// [`keep_freed_memory`] keeps for reuse while a job runs), so that a window idling after
/// training does not hold on to the training's peak.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes the system OpenBLAS, when the process has one, compute on the calling thread.
///
/// faiss links the system BLAS (OpenBLAS), which loads before libtorch, so libtorch's own
/// matrix products (`sgemm_`: the embedding layer, forward and backward) bind to it rather
/// than to the MKL inside libtorch. OpenBLAS then runs its own pool of threads, which spin
/// waiting for work on the same cores libtorch's OpenMP threads need for the convolutions
/// next: the default preset's forward lost about a third of its speed to that
/// (docs/benchmarks.md, "One pool of threads"). On one thread, OpenBLAS' small products
/// cost less than the contention did. Looked up at run time, so a build whose BLAS is not
/// OpenBLAS is left alone. Call it first thing in `main`.
#[allow(unsafe_code)] // a dlsym lookup and one call into OpenBLAS
pub fn blas_on_calling_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: the symbol, when present, is OpenBLAS' `void openblas_set_num_threads(int)`;
    // glibc's RTLD_DEFAULT is the null handle (search the whole process).
    unsafe {
        let symbol = libc::dlsym(std::ptr::null_mut(), c"openblas_set_num_threads".as_ptr());
        if !symbol.is_null() {
            let set_threads: extern "C" fn(libc::c_int) = std::mem::transmute(symbol);
            set_threads(1);
        }
    }
}
