//! tracefs: mounting it when missing and checking tracepoint record layouts.
//!
//! aya attaches tracepoints through tracefs (it reads the event id there), and the BPF
//! programs read record fields at fixed offsets, so before attaching the loader
//! compares those offsets with the kernel's own `format` description.

use std::{
    ffi::CString,
    io,
    path::{Path, PathBuf},
};

use paved_flow_common::kernel::TracepointField;

use crate::error::ProbeError;

/// Where tracefs lives on current kernels.
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// Where older setups expose it, under debugfs.
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// Returns the tracefs root, mounting tracefs at [`TRACEFS`] if no mount is found.
pub fn ensure_mounted() -> Result<PathBuf, ProbeError> {
    for root in [TRACEFS, DEBUGFS_TRACING] {
        if Path::new(root).join("events").is_dir() {
            return Ok(PathBuf::from(root));
        }
    }
    tracing::info!(path = TRACEFS, "tracefs not mounted, mounting it");
    mount_tracefs(Path::new(TRACEFS)).map_err(|source| ProbeError::Tracefs {
        path: PathBuf::from(TRACEFS),
        source,
    })?;
    Ok(PathBuf::from(TRACEFS))
}

fn mount_tracefs(target: &Path) -> io::Result<()> {
    let to_c = |s: &str| CString::new(s).map_err(io::Error::other);
    let source = to_c("tracefs")?;
    let fstype = to_c("tracefs")?;
    let target = CString::new(target.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call, and
    // a null `data` is allowed for tracefs.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Checks that each of `fields` sits where the BPF program expects it in the record
/// of `category/name`.
pub fn check_layout(
    root: &Path,
    category: &str,
    name: &str,
    fields: &[TracepointField],
) -> Result<(), ProbeError> {
    let tracepoint = format!("{category}/{name}");
    let path = root.join("events").join(category).join(name).join("format");
    let format = std::fs::read_to_string(&path).map_err(|source| ProbeError::TracepointFormat {
        tracepoint: tracepoint.clone(),
        path: path.clone(),
        source,
    })?;
    for expected in fields {
        let found = find_field(&format, expected.name);
        if found != Some((expected.offset, expected.size)) {
            return Err(ProbeError::TracepointLayout {
                tracepoint,
                field: expected.name,
                expected: (expected.offset, expected.size),
                found,
            });
        }
    }
    Ok(())
}

/// Offset and size of `field` in a tracepoint `format` file, e.g. from the line
/// `field:__u16 sport;<TAB>offset:24;<TAB>size:2;<TAB>signed:0;`.
fn find_field(format: &str, field: &str) -> Option<(usize, usize)> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';').map(str::trim);
        let declaration = parts.next()?.strip_prefix("field:")?;
        // The name is the declaration's last word, minus any array suffix.
        let declared = declaration.rsplit([' ', '*']).next()?;
        let declared = declared.split('[').next()?;
        if declared != field {
            return None;
        }
        let mut offset = None;
        let mut size = None;
        for part in parts {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        Some((offset?, size?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: &str = "name: inet_sock_set_state
ID: 2287
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
";

    #[test]
    fn fields_are_found_by_name_with_pointers_and_arrays() {
        assert_eq!(find_field(FORMAT, "skaddr"), Some((8, 8)));
        assert_eq!(find_field(FORMAT, "oldstate"), Some((16, 4)));
        assert_eq!(find_field(FORMAT, "sport"), Some((24, 2)));
        assert_eq!(find_field(FORMAT, "saddr_v6"), Some((40, 16)));
        assert_eq!(find_field(FORMAT, "saddr"), None);
        assert_eq!(find_field(FORMAT, "common"), None);
    }

    #[test]
    fn a_moved_field_is_a_layout_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("paved-tracefs-{}", std::process::id()));
        let event = dir.join("events/sock/inet_sock_set_state");
        std::fs::create_dir_all(&event).expect("temp dir");
        std::fs::write(event.join("format"), FORMAT).expect("write format");
        let moved = [TracepointField {
            name: "sport",
            offset: 26,
            size: 2,
        }];
        let err = check_layout(&dir, "sock", "inet_sock_set_state", &moved)
            .expect_err("moved field must be rejected");
        assert!(err.to_string().contains("sport"), "{err}");
        let ok = [TracepointField {
            name: "sport",
            offset: 24,
            size: 2,
        }];
        check_layout(&dir, "sock", "inet_sock_set_state", &ok).expect("layout matches");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
