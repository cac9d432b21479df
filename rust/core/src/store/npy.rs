//! The `.npy` header: magic, version, and the dict literal with `descr`,
//! `fortran_order` and `shape`. Only what csipose stores is accepted
//! (little-endian numbers and booleans, C order); everything else is a clear
//! error rather than a misread.

/// Element types a store may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 => 1,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }

    /// numpy's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "bool",
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::I16 => "int16",
            Dtype::U16 => "uint16",
            Dtype::I32 => "int32",
            Dtype::U32 => "uint32",
            Dtype::I64 => "int64",
            Dtype::U64 => "uint64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    fn from_descr(descr: &str) -> Result<Self, String> {
        let (order, code) = descr.split_at(descr.len().min(1));
        let t = match code {
            "b1" => Dtype::Bool,
            "u1" => Dtype::U8,
            "i1" => Dtype::I8,
            "i2" => Dtype::I16,
            "u2" => Dtype::U16,
            "i4" => Dtype::I32,
            "u4" => Dtype::U32,
            "i8" => Dtype::I64,
            "u8" => Dtype::U64,
            "f4" => Dtype::F32,
            "f8" => Dtype::F64,
            _ => return Err(format!("unsupported dtype {descr:?}")),
        };
        match order {
            "<" => Ok(t),
            "|" if t.size() == 1 => Ok(t),
            ">" => Err(format!("big-endian dtype {descr:?} is not supported")),
            _ => Err(format!("unsupported dtype {descr:?}")),
        }
    }
}

/// A parsed header: element type, shape, and where the data starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements (None on overflow).
    pub fn len(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// Parse the header at the start of a `.npy` file.
pub fn parse_header(bytes: &[u8]) -> Result<NpyHeader, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (the magic string is missing)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            let b = bytes.get(8..12).ok_or("truncated in the header")?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let text = bytes.get(start..start + len).ok_or_else(|| {
        format!(
            "truncated in the header ({} of {} bytes)",
            bytes.len(),
            start + len
        )
    })?;
    let text = std::str::from_utf8(text).map_err(|_| "the header is not text".to_string())?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    loop {
        p.skip_ws();
        if p.peek() == Some(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected header key {other:?}")),
        }
        p.skip_ws();
        if p.peek() == Some(b',') {
            p.i += 1;
        }
    }
    let descr = descr.ok_or("the header has no 'descr'")?;
    if fortran.ok_or("the header has no 'fortran_order'")? {
        return Err("Fortran-ordered arrays are not supported (save it C-ordered)".into());
    }
    Ok(NpyHeader {
        dtype: Dtype::from_descr(&descr)?,
        shape: shape.ok_or("the header has no 'shape'")?,
        data_offset: start + len,
    })
}

/// A scanner for the header's Python dict literal.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!(
                "malformed header: expected {:?} at byte {}",
                c as char, self.i
            ))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let q = self
            .peek()
            .filter(|&c| c == b'\'' || c == b'"')
            .ok_or("malformed header: expected a string")?;
        self.i += 1;
        let start = self.i;
        while self.peek().is_some_and(|c| c != q) {
            self.i += 1;
        }
        let out =
            std::str::from_utf8(&self.s[start..self.i]).map_err(|_| "malformed header string")?;
        self.expect(q)?;
        Ok(out.to_string())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_ws();
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err("malformed header: expected True or False".into())
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b')') => {
                    self.i += 1;
                    return Ok(dims);
                }
                Some(b',') => self.i += 1,
                Some(c) if c.is_ascii_digit() => {
                    let start = self.i;
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.i += 1;
                    }
                    let text =
                        std::str::from_utf8(&self.s[start..self.i]).map_err(|_| "bad shape")?;
                    // numpy may write 10L on old Python 2 files.
                    if self.peek() == Some(b'L') {
                        self.i += 1;
                    }
                    dims.push(
                        text.parse()
                            .map_err(|_| format!("shape entry {text} is too large"))?,
                    );
                }
                _ => return Err("malformed header: bad shape tuple".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dict: &str) -> Vec<u8> {
        let mut text = dict.to_string();
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(text.len() as u16).to_le_bytes());
        b.extend_from_slice(text.as_bytes());
        b
    }

    #[test]
    fn parses_what_numpy_writes() {
        let bytes = header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 114, 10), }");
        let h = parse_header(&bytes).unwrap();
        assert_eq!(
            (h.dtype, h.shape.clone(), h.data_offset),
            (Dtype::F32, vec![3, 114, 10], bytes.len())
        );
        let h = parse_header(&header(
            "{'descr': '|b1', 'fortran_order': False, 'shape': (5,), }",
        ))
        .unwrap();
        assert_eq!((h.dtype, h.shape), (Dtype::Bool, vec![5]));
        let h = parse_header(&header(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (), }",
        ))
        .unwrap();
        assert_eq!(h.shape, Vec::<usize>::new());
    }

    #[test]
    fn rejects_what_csipose_must_not_misread() {
        let bad = [
            "{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }",
            "{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }",
            "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, x), }",
            "{'descr': '<f4', 'shape': (3,), }",
        ];
        for b in bad {
            assert!(parse_header(&header(b)).is_err(), "{b}");
        }
        assert!(parse_header(b"\x93NUMPY\x01\x00\xff\x00{").is_err());
        assert!(parse_header(b"PK\x03\x04").is_err());
    }
}
