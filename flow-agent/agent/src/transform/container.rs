//! cgroup id → container id.
//!
//! A cgroup v2 id is the inode number of the cgroup's directory under
//! `/sys/fs/cgroup`. The resolver finds the directory either through the process
//! (`/proc/<pid>/cgroup` names its cgroup path; the path is believed only if its inode
//! is the record's cgroup id, since the process may have moved or gone) or, failing
//! that, by walking the cgroup tree once for that id. The path's components are then
//! matched against the naming schemes of the container runtimes (Docker, containerd,
//! CRI-O, Podman, and the kubepods hierarchy). A cgroup that is not a container's, or
//! that cannot be found, resolves to `None`: unknown stays unknown.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use paved_flow_proto::ContainerInfo;

/// Where cgroup v2 is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Where procfs is mounted.
pub const PROC_ROOT: &str = "/proc";

/// Most cgroup ids remembered; the cache is cleared when it grows past this.
const MAX_CACHED: usize = 16_384;
/// Most directories visited by one walk of the cgroup tree.
const MAX_WALK: usize = 20_000;
/// Deepest directory visited by a walk.
const MAX_DEPTH: usize = 16;

/// Resolves cgroup ids to containers, caching answers (including "none").
#[derive(Debug)]
pub struct ContainerResolver {
    cgroup_root: PathBuf,
    proc_root: PathBuf,
    cache: HashMap<u64, Option<ContainerInfo>>,
}

impl Default for ContainerResolver {
    fn default() -> Self {
        Self::new(CGROUP_ROOT, PROC_ROOT)
    }
}

impl ContainerResolver {
    /// A resolver reading the given mounts (tests point them at fixtures).
    pub fn new(cgroup_root: impl Into<PathBuf>, proc_root: impl Into<PathBuf>) -> Self {
        Self {
            cgroup_root: cgroup_root.into(),
            proc_root: proc_root.into(),
            cache: HashMap::new(),
        }
    }

    /// The container of cgroup `cgroup_id`, using process `pid` as a hint.
    pub fn resolve(&mut self, cgroup_id: u64, pid: u32) -> Option<ContainerInfo> {
        if cgroup_id == 0 {
            return None;
        }
        if let Some(known) = self.cache.get(&cgroup_id) {
            return known.clone();
        }
        let path = self
            .path_from_process(cgroup_id, pid)
            .or_else(|| self.path_by_walking(cgroup_id));
        let found = path.as_deref().and_then(container_from_path);
        if path.is_some() {
            // Cache only answers based on a found cgroup: a cgroup not found yet may
            // be created a moment later.
            if self.cache.len() >= MAX_CACHED {
                self.cache.clear();
            }
            self.cache.insert(cgroup_id, found.clone());
        }
        found
    }

    /// The cgroup path `/proc/<pid>/cgroup` names, if its inode is `cgroup_id`.
    fn path_from_process(&self, cgroup_id: u64, pid: u32) -> Option<String> {
        if pid == 0 {
            return None;
        }
        let text =
            std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("cgroup")).ok()?;
        let path = unified_path(&text)?;
        let dir = self.cgroup_root.join(path.trim_start_matches('/'));
        let inode = std::fs::metadata(&dir).ok()?.ino();
        (inode == cgroup_id).then(|| path.to_owned())
    }

    /// Finds the directory whose inode is `cgroup_id` under the cgroup root.
    fn path_by_walking(&self, cgroup_id: u64) -> Option<String> {
        let mut stack = vec![(self.cgroup_root.clone(), 0usize)];
        let mut visited = 0;
        while let Some((dir, depth)) = stack.pop() {
            visited += 1;
            if visited > MAX_WALK {
                tracing::debug!(cgroup_id, "cgroup walk bound reached");
                return None;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            if meta.ino() == cgroup_id {
                let relative = dir.strip_prefix(&self.cgroup_root).ok()?;
                return Some(format!("/{}", relative.display()));
            }
            if depth >= MAX_DEPTH {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((entry.path(), depth + 1));
                }
            }
        }
        None
    }
}

/// The cgroup v2 path in the text of `/proc/<pid>/cgroup` (the `0::<path>` line).
pub fn unified_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::trim)
        .filter(|path| path.starts_with('/'))
}

/// The container a cgroup path belongs to, from the runtimes' naming schemes:
/// `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
/// `libpod-<id>.scope`, or a bare 64-hex-digit component (`/docker/<id>`,
/// `/kubepods/.../<id>`). The innermost match wins; `crio-conmon-` scopes (the
/// monitor, not the container) do not match. The pod UID comes from a
/// `kubepods…-pod<uid>.slice` or `pod<uid>` component.
pub fn container_from_path(path: &str) -> Option<ContainerInfo> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let id = components.iter().rev().find_map(|c| container_id(c))?;
    let pod_uid = components.iter().rev().find_map(|c| pod_uid(c));
    Some(ContainerInfo {
        id: id.to_owned(),
        pod_uid,
    })
}

fn container_id(component: &str) -> Option<&str> {
    if component.starts_with("crio-conmon-") {
        return None;
    }
    let core = component.strip_suffix(".scope").unwrap_or(component);
    let id = ["docker-", "cri-containerd-", "crio-", "libpod-"]
        .iter()
        .find_map(|prefix| core.strip_prefix(prefix))
        .unwrap_or(core);
    is_container_id(id).then_some(id)
}

fn is_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn pod_uid(component: &str) -> Option<String> {
    // systemd driver: kubepods-burstable-pod1234_5678.slice (dashes escaped as `_`);
    // cgroupfs driver: pod1234-5678.
    let core = component.strip_suffix(".slice").unwrap_or(component);
    let uid = core
        .rsplit_once("-pod")
        .map(|(_, uid)| uid)
        .or_else(|| core.strip_prefix("pod"))?;
    let uid = uid.replace('_', "-");
    let looks_like_uid = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    looks_like_uid.then_some(uid)
}

/// Whether `path` looks like a cgroup v2 mount (it has `cgroup.controllers`).
pub fn is_cgroup2(path: &Path) -> bool {
    path.join("cgroup.controllers").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn runtime_naming_schemes_yield_the_container_id() {
        for path in [
            format!("/system.slice/docker-{ID}.scope"),
            format!("/docker/{ID}"),
            format!("/system.slice/cri-containerd-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c.slice/crio-{ID}.scope"
            ),
        ] {
            let found = container_from_path(&path).expect(&path);
            assert_eq!(found.id, ID, "{path}");
        }
    }

    #[test]
    fn kubernetes_paths_carry_the_pod_uid() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c2d3e_4a5b_6c7d_8e9f_0a1b2c3d4e5f.slice/cri-containerd-{ID}.scope"
        );
        let found = container_from_path(&path).expect("container");
        assert_eq!(
            found.pod_uid.as_deref(),
            Some("6f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f")
        );
        let path = format!("/kubepods/besteffort/pod6f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f/{ID}");
        assert!(container_from_path(&path).and_then(|c| c.pod_uid).is_some());
    }

    #[test]
    fn host_cgroups_and_monitors_are_not_containers() {
        for path in [
            "/",
            "/user.slice/user-0.slice/session-3.scope",
            "/system.slice/nats-server.service",
            &format!("/machine.slice/crio-conmon-{ID}.scope"),
            "/docker/not-an-id",
        ] {
            assert_eq!(container_from_path(path), None, "{path}");
        }
    }

    #[test]
    fn the_unified_line_is_found_among_v1_lines() {
        let text = "12:pids:/docker/x\n0::/system.slice/foo.service\n";
        assert_eq!(unified_path(text), Some("/system.slice/foo.service"));
        assert_eq!(unified_path("1:name=systemd:/\n"), None);
    }

    #[test]
    fn a_cgroup_id_resolves_through_the_process_or_the_tree() {
        let root = std::env::temp_dir().join(format!("paved-cgroup-{}", std::process::id()));
        let cgroups = root.join("cgroup");
        let container_dir = cgroups.join(format!("system.slice/docker-{ID}.scope"));
        std::fs::create_dir_all(&container_dir).expect("cgroup dirs");
        let host_dir = cgroups.join("system.slice/sshd.service");
        std::fs::create_dir_all(&host_dir).expect("cgroup dirs");
        let proc = root.join("proc");
        std::fs::create_dir_all(proc.join("42")).expect("proc dir");
        std::fs::write(
            proc.join("42/cgroup"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
        )
        .expect("cgroup file");
        let container_inode = std::fs::metadata(&container_dir).expect("stat").ino();
        let host_inode = std::fs::metadata(&host_dir).expect("stat").ino();

        let mut resolver = ContainerResolver::new(&cgroups, &proc);
        // Through the process.
        assert_eq!(
            resolver.resolve(container_inode, 42).map(|c| c.id),
            Some(ID.to_owned())
        );
        // The process is gone (pid 7 has no entry): found by walking the tree.
        let mut resolver = ContainerResolver::new(&cgroups, &proc);
        assert_eq!(
            resolver.resolve(container_inode, 7).map(|c| c.id),
            Some(ID.to_owned())
        );
        // A host service is no container; an id found nowhere is unknown.
        assert_eq!(resolver.resolve(host_inode, 7), None);
        assert_eq!(resolver.resolve(u64::MAX - 1, 42), None);
        let _ = std::fs::remove_dir_all(&root);
    }
}
