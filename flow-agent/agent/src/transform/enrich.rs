//! Enrichment: the process and container behind a record.
//!
//! Looked up once per aggregate (not per record) and cached, so the cost does not
//! grow with the connection rate.

use std::{collections::HashMap, path::PathBuf};

use paved_flow_proto::{ContainerInfo, ProcessInfo};

use super::container::{CGROUP_ROOT, ContainerResolver, PROC_ROOT};

/// Most executables remembered; cleared when it grows past this.
const MAX_CACHED_EXES: usize = 16_384;

/// Where the enricher looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrichSettings {
    /// procfs mount.
    pub proc_root: PathBuf,
    /// cgroup v2 mount.
    pub cgroup_root: PathBuf,
}

impl Default for EnrichSettings {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from(PROC_ROOT),
            cgroup_root: PathBuf::from(CGROUP_ROOT),
        }
    }
}

/// Process and container lookups with caches.
#[derive(Debug)]
pub struct Enricher {
    proc_root: PathBuf,
    containers: ContainerResolver,
    /// Executable by pid, remembered for the current and the previous interval (pids
    /// are reused, so entries do not live longer).
    exes: HashMap<u32, Option<String>>,
    previous_exes: HashMap<u32, Option<String>>,
}

impl Enricher {
    /// An enricher reading the given mounts.
    pub fn new(settings: &EnrichSettings) -> Self {
        Self {
            proc_root: settings.proc_root.clone(),
            containers: ContainerResolver::new(&settings.cgroup_root, &settings.proc_root),
            exes: HashMap::new(),
            previous_exes: HashMap::new(),
        }
    }

    /// The process `pid`, named `comm` by the kernel.
    pub fn process(&mut self, pid: u32, comm: &[u8]) -> ProcessInfo {
        let exe = match self.exes.get(&pid) {
            Some(exe) => exe.clone(),
            None => {
                let exe = match self.previous_exes.get(&pid) {
                    Some(exe) => exe.clone(),
                    None => self.read_exe(pid),
                };
                if self.exes.len() < MAX_CACHED_EXES {
                    self.exes.insert(pid, exe.clone());
                }
                exe
            }
        };
        ProcessInfo {
            pid,
            comm: String::from_utf8_lossy(comm).into_owned(),
            exe,
        }
    }

    fn read_exe(&self, pid: u32) -> Option<String> {
        if pid == 0 {
            return None;
        }
        // Gone processes (short-lived clients) and kernel threads have none: unknown.
        std::fs::read_link(self.proc_root.join(pid.to_string()).join("exe"))
            .ok()
            .map(|path| path.to_string_lossy().into_owned())
    }

    /// The container of `cgroup_id` (`pid` helps find it).
    pub fn container(&mut self, cgroup_id: u64, pid: u32) -> Option<ContainerInfo> {
        self.containers.resolve(cgroup_id, pid)
    }

    /// Ends an interval: process entries older than one interval are forgotten.
    pub fn end_interval(&mut self) {
        self.previous_exes = std::mem::take(&mut self.exes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_its_executable_and_a_missing_one_has_none() {
        let mut enricher = Enricher::new(&EnrichSettings::default());
        let me = enricher.process(std::process::id(), b"test");
        assert_eq!(me.comm, "test");
        assert!(me.exe.is_some(), "{me:?}");
        let gone = enricher.process(u32::MAX - 3, b"ghost");
        assert_eq!(gone.exe, None);
    }
}
