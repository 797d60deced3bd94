//! Finding the root of the cgroup v2 hierarchy, where the release program attaches.

use std::{io, path::PathBuf};

/// The mount point of the first `cgroup2` file system in this process's mount table
/// (`/sys/fs/cgroup` on a unified host, `/sys/fs/cgroup/unified` on a hybrid one).
pub fn root() -> io::Result<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    cgroup2_mount(&table).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no cgroup2 file system in /proc/self/mountinfo",
        )
    })
}

/// The mount point of the first `cgroup2` entry of a `mountinfo` table.
fn cgroup2_mount(table: &str) -> Option<PathBuf> {
    table.lines().find_map(|line| {
        // "36 35 0:30 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw"
        let (before, after) = line.split_once(" - ")?;
        let fstype = after.split_whitespace().next()?;
        (fstype == "cgroup2").then(|| before.split_whitespace().nth(4).map(unescape))?
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_on_a_hybrid_host() {
        let table = "\
25 30 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:4 - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        assert_eq!(
            cgroup2_mount(table),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn a_host_without_cgroup2_has_no_root() {
        let table = "27 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup2_mount(table), None);
    }

    #[test]
    fn escaped_spaces_in_the_mount_point_are_decoded() {
        let table = "26 25 0:24 / /mnt/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(table), Some(PathBuf::from("/mnt/my cgroup")));
    }
}
