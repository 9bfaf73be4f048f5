//! The scratch directory of one patch run, under the cache's `work/`.

use std::path::{Path, PathBuf};

use crate::error::Result;

/// A scratch directory removed on drop (mounts inside are already gone),
/// marked alive by the lock it holds (see [`crate::cleanup`]).
pub struct WorkDir(pub PathBuf, #[allow(dead_code)] std::fs::File);

impl WorkDir {
    pub(crate) fn create(root: &Path) -> Result<WorkDir> {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let (dir, lock) = crate::cleanup::create(root, &format!("{}-{n}", std::process::id()))?;
        Ok(WorkDir(dir, lock))
    }

    /// The directory's name (`PID-NANOS`): unique also among runs in other
    /// PID namespaces sharing the cache, so container ids and cgroups made
    /// from it are too.
    pub(crate) fn name(&self) -> String {
        self.0.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        crate::cleanup::remove_work_dir(&self.0);
        crate::cleanup::unregister(&self.0);
    }
}
