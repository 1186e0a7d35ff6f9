//! The sidecar binary (`cynode-inference-proxy`): found and checked once at start-up, then
//! mounted read-only into a container of the node's sandbox image for every inference job. No
//! registry and no image build is involved, which is why it must be linked statically: it runs
//! on whatever libc the image has, or none.

use std::io::Read;
use std::path::{Path, PathBuf};

use cynode_contracts::worker_cli::INFERENCE_PROXY_BINARY_NAME as BINARY_NAME;

/// Where the sidecar binary is: the configured path, else next to this executable. `Err` says
/// why no inference job can run on this node; the worker logs it at start-up and fails such
/// jobs with it.
pub fn locate(configured: Option<&Path>) -> Result<PathBuf, String> {
    let path = match configured {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()
            .map_err(|e| {
                format!("cannot find this executable to look for {BINARY_NAME} beside it: {e}")
            })?
            .with_file_name(BINARY_NAME),
    };
    check_static(&path)?;
    Ok(path)
}

/// A statically linked ELF executable asks for no program interpreter (`PT_INTERP`).
pub fn check_static(path: &Path) -> Result<(), String> {
    let name = path.display();
    let mut file = std::fs::File::open(path)
        .map_err(|e| format!("the inference sidecar binary {name} cannot be opened: {e}"))?;
    let mut bytes = Vec::new();
    file.by_ref()
        .take(64 * 1024)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    match has_interpreter(&bytes) {
        None => Err(format!(
            "{name} is not a 64-bit little-endian ELF executable"
        )),
        Some(true) => Err(format!(
            "{name} is dynamically linked; the sidecar must be built with `-C target-feature=+crt-static` \
             (see agents/inference-proxy/README.md)"
        )),
        Some(false) => Ok(()),
    }
}

/// `Some(true)` if the ELF header's program headers include `PT_INTERP`; `None` if this is not
/// a 64-bit little-endian ELF (or its headers lie beyond what was read).
fn has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..5)? != b"\x7fELF\x02" || *elf.get(5)? != 1 {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let phoff = usize::try_from(u64::from_le_bytes(elf.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let kind = u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?);
        if kind == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_is_refused_with_the_fix() {
        // The test binary itself is dynamically linked.
        let me = std::env::current_exe().unwrap();
        let err = check_static(&me).unwrap_err();
        assert!(err.contains("crt-static"), "{err}");
        assert!(
            check_static(Path::new("/nonexistent/x"))
                .unwrap_err()
                .contains("cannot be opened")
        );
        assert_eq!(has_interpreter(b"#!/bin/sh\n"), None);
    }

    #[test]
    fn busybox_static_is_accepted() {
        // Debian's busybox-static, which the bootstrap installs for the sandbox image.
        check_static(Path::new("/bin/busybox")).unwrap();
    }
}
