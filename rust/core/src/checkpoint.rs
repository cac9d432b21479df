//! The checkpoint file a Rust runtime loads. Run and checkpoint directories are
//! resolved in one place, Python's `csipose.checkpoint.model_file`; the loaders take
//! the `model.safetensors` it names and refuse anything else.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `path` when it is a file, else a checkpoint error naming it.
pub fn checkpoint_file(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    Err(Error::Checkpoint(format!(
        "{}: no such checkpoint file{}",
        path.display(),
        if path.is_dir() {
            " (a directory: pass its model.safetensors; csipose.checkpoint.model_file resolves \
             run and checkpoint directories)"
        } else {
            ""
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_pass_and_directories_are_named() {
        let dir = std::env::temp_dir().join(format!("csipose-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let file = dir.join("model.safetensors");
        std::fs::write(&file, b"x").ok();
        assert_eq!(checkpoint_file(&file).ok(), Some(file.clone()));
        match checkpoint_file(&dir) {
            Err(Error::Checkpoint(m)) => assert!(m.contains("a directory"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            checkpoint_file(&dir.join("absent")),
            Err(Error::Checkpoint(_))
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
