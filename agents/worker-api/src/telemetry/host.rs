//! What `node:stats` and `node:info` read from the host: `/proc` (load, memory, cores, kernel)
//! and `statvfs` of the state directory. A value that cannot be read is 0 (or `unknown`) and a
//! warning in the log; a stats answer never fails for it.

use std::path::Path;

use cynode_contracts::telemetry::{CpuStats, DiskStats, MemoryStats};

/// `/proc/sys/kernel/osrelease`, or `unknown`.
pub fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the kernel version");
            "unknown".into()
        })
}

pub fn cpu() -> CpuStats {
    let loads = std::fs::read_to_string("/proc/loadavg")
        .map_err(|e| tracing::warn!(error = %e, "cannot read /proc/loadavg"))
        .map(|text| parse_loadavg(&text))
        .unwrap_or_default();
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .map(|text| {
            text.lines()
                .filter(|l| l.starts_with("processor") && l.contains(':'))
                .count()
        })
        .filter(|n| *n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(0);
    CpuStats {
        cores: u32::try_from(cores).unwrap_or(u32::MAX),
        load1: loads[0],
        load5: loads[1],
        load15: loads[2],
    }
}

fn parse_loadavg(text: &str) -> [f64; 3] {
    let mut loads = [0.0; 3];
    for (slot, field) in loads.iter_mut().zip(text.split_whitespace()) {
        *slot = field.parse().unwrap_or(0.0);
    }
    loads
}

pub fn memory() -> MemoryStats {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read /proc/meminfo");
        String::new()
    });
    parse_meminfo(&text)
}

/// `MemTotal` and `MemAvailable` (kB) in MB; used is the difference.
fn parse_meminfo(text: &str) -> MemoryStats {
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (total, available) = (kib("MemTotal") / 1024, kib("MemAvailable") / 1024);
    MemoryStats {
        total_mb: total,
        used_mb: total.saturating_sub(available),
        free_mb: available,
    }
}

pub fn disk(state_dir: &Path) -> DiskStats {
    match nix::sys::statvfs::statvfs(state_dir) {
        Ok(stat) => {
            // `c_ulong` is 32 bits on some targets.
            #[allow(clippy::useless_conversion)]
            let unit = u64::from(stat.fragment_size());
            let mb = |blocks: u64| blocks.saturating_mul(unit) / (1024 * 1024);
            DiskStats {
                state_dir_free_mb: mb(stat.blocks_available()),
                state_dir_total_mb: mb(stat.blocks()),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, dir = %state_dir.display(), "cannot statvfs the state directory");
            DiskStats {
                state_dir_free_mb: 0,
                state_dir_total_mb: 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        assert_eq!(
            parse_loadavg("0.52 1.25 2.00 3/456 7890\n"),
            [0.52, 1.25, 2.0]
        );
        let memory = parse_meminfo(
            "MemTotal:        8388608 kB\nMemFree:  1000 kB\nMemAvailable:    2097152 kB\n",
        );
        assert_eq!(
            memory,
            MemoryStats {
                total_mb: 8192,
                used_mb: 6144,
                free_mb: 2048
            }
        );
    }

    #[test]
    fn the_host_has_cores_memory_and_disk() {
        assert!(cpu().cores >= 1);
        assert!(memory().total_mb > 0);
        let disk = disk(Path::new("/"));
        assert!(disk.state_dir_total_mb >= disk.state_dir_free_mb);
        assert!(disk.state_dir_total_mb > 0);
    }
}
