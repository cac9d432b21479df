//! A `.npy` file mapped into memory and checked against its header.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::npy::{Dtype, NpyHeader, parse_header};
use crate::{Error, Result};

/// A read-only memory-mapped `.npy` array.
///
/// Invariant (why the `unsafe` map is sound in practice): a store's files are
/// written once, completely, into a temporary directory and renamed into
/// place, and never modified afterwards. A file truncated by another process
/// while mapped would make reads fault; csipose never does that.
#[derive(Debug)]
pub struct MappedArray {
    path: PathBuf,
    map: Mmap,
    header: NpyHeader,
}

impl MappedArray {
    /// Map `path` and check that it holds every byte its header declares.
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |problem: String| Error::DataFormat(format!("{}: {problem}", path.display()));
        let file = File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let size = file
            .metadata()
            .map_err(|e| bad(format!("cannot stat: {e}")))?
            .len();
        if size < 10 {
            return Err(bad(format!("truncated: {size} bytes is not a .npy file")));
        }
        // SAFETY: see the type's invariant: store files are immutable once written.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| bad(format!("cannot map: {e}")))?;
        let header = parse_header(&map).map_err(bad)?;
        let need = header
            .len()
            .and_then(|n| n.checked_mul(header.dtype.size()))
            .and_then(|n| n.checked_add(header.data_offset))
            .ok_or_else(|| bad(format!("shape {:?} is too large", header.shape)))?;
        if map.len() < need {
            return Err(bad(format!(
                "truncated: the header's shape {:?} of {} needs {} bytes, the file has {}",
                header.shape,
                header.dtype.name(),
                need,
                map.len()
            )));
        }
        if !header.data_offset.is_multiple_of(header.dtype.size()) {
            return Err(bad(format!(
                "data at byte {} is not aligned",
                header.data_offset
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            header,
        })
    }

    /// The file this array was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.header.dtype
    }

    /// Shape, leading axis first.
    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    /// Elements per row (per index of the leading axis).
    pub fn row_len(&self) -> usize {
        self.header.shape.iter().skip(1).product()
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.row_len() * self.header.dtype.size()
    }

    /// Number of rows (length of the leading axis; 1 for a 0-d array).
    pub fn rows(&self) -> usize {
        self.header.shape.first().copied().unwrap_or(1)
    }

    /// The data as raw bytes.
    pub fn bytes(&self) -> &[u8] {
        let n = self.rows() * self.row_bytes();
        &self.map[self.header.data_offset..self.header.data_offset + n]
    }

    /// The data as float32, or an error naming the file when it is not float32.
    pub fn f32(&self) -> Result<&[f32]> {
        if self.header.dtype != Dtype::F32 {
            return Err(Error::DataFormat(format!(
                "{}: expected float32, the file holds {}",
                self.path.display(),
                self.header.dtype.name()
            )));
        }
        let bytes = self.bytes();
        // SAFETY: the mapping is page-aligned and the data offset is a multiple
        // of 4 (checked in `open`), so the pointer is aligned for f32; every bit
        // pattern is a valid f32; the length is whole elements.
        Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    pub(in crate::store) fn write_npy(path: &Path, descr: &str, shape: &str, data: &[u8]) {
        let mut text =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut f = File::create(path).unwrap();
        f.write_all(b"\x93NUMPY\x01\x00").unwrap();
        f.write_all(&(text.len() as u16).to_le_bytes()).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.write_all(data).unwrap();
    }

    #[test]
    fn maps_float32_rows() {
        let dir = std::env::temp_dir().join(format!("csipose-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_npy(&p, "<f4", "(3, 2)", &data);
        let a = MappedArray::open(&p).unwrap();
        assert_eq!((a.rows(), a.row_len(), a.row_bytes()), (3, 2, 8));
        assert_eq!(a.f32().unwrap(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

        write_npy(&p, "<f4", "(4, 2)", &data);
        let err = MappedArray::open(&p).unwrap_err().to_string();
        assert!(err.contains("a.npy") && err.contains("truncated"), "{err}");

        write_npy(&p, "<i4", "(3, 2)", &data);
        assert!(
            MappedArray::open(&p)
                .unwrap()
                .f32()
                .unwrap_err()
                .to_string()
                .contains("int32")
        );
        std::fs::write(&p, b"short").unwrap();
        assert!(
            MappedArray::open(&p)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
