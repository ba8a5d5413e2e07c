//! Turning command-line paths into files: directories expand to every file
//! below them (for rules, every `.flow` file), recursively, in byte order of
//! their paths (docs/cli.md).

use std::io::Read;
use std::path::{Path, PathBuf};

/// One input named on the command line, after directory expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file.
    File(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl Input {
    /// How the input is named in output (`-` for stdin).
    pub fn display(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "-".to_string(),
        }
    }

    /// Reads the whole input.
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Input::File(p) => std::fs::read(p),
            Input::Stdin => {
                let mut buf = Vec::new();
                std::io::stdin().lock().read_to_end(&mut buf)?;
                Ok(buf)
            }
        }
    }

    /// Reads the whole input into the front of `buf` and returns its
    /// length: a caller reading many inputs reuses one buffer. `buf` only
    /// grows (zeroed), so its bytes past the input are left from earlier.
    /// A file is read without asking its size first: `read_to_end` on a
    /// `File` asks `statx` and `lseek` for a size hint, two system calls
    /// per message that a buffer already large enough does not need.
    pub fn read_into(&self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let mut file = match self {
            Input::File(p) => std::fs::File::open(p)?,
            Input::Stdin => {
                buf.clear();
                return std::io::stdin().lock().read_to_end(buf);
            }
        };
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                buf.resize((filled * 2).max(1 << 16), 0);
            }
            match file.read(&mut buf[filled..]) {
                Ok(0) => return Ok(filled),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Expands paths: a directory becomes the files below it that `keep`
/// accepts, sorted by path bytes; a file is kept as named (even if `keep`
/// would refuse it); `-` is stdin. A path that does not exist is kept so
/// that reading it reports the error in order.
pub fn expand(paths: &[PathBuf], keep: fn(&Path) -> bool) -> Vec<Input> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(Input::Stdin);
        } else if path.is_dir() {
            let found = weir_compiler::loader::files_under(path, keep);
            out.extend(found.into_iter().map(Input::File));
        } else {
            out.push(Input::File(path.clone()));
        }
    }
    out
}

/// Every file counts as a message.
pub fn any_file(_: &Path) -> bool {
    true
}

/// Rule files are the `.flow` files.
pub fn flow_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "flow")
}
