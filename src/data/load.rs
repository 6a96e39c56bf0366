//! Reading CSV and Parquet files into a polars frame, with errors that name file and line.

use std::path::{Path, PathBuf};

use polars::prelude::*;

/// A data file that cannot be used. Every variant is bad input (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A source that is not a file (a MongoDB collection), asked to load as one.
    #[error("{what} is read by the ingest stage, not as a file")]
    Remote {
        /// The source.
        what: String,
    },
    /// The path cannot be opened or read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Zero bytes, or only blank lines.
    #[error("{}: the file is empty (expected a header line and data rows)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A header but no rows.
    #[error("{}: the file has a header but no data rows", path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
    },
    /// A record with more or fewer fields than the header.
    #[error("{}:{line}: expected {expected} fields as in the header, found {found}", path.display())]
    Ragged {
        /// The file.
        path: PathBuf,
        /// 1-based line where the record starts.
        line: usize,
        /// Fields in the header.
        expected: usize,
        /// Fields in this record.
        found: usize,
    },
    /// The header names one column twice.
    #[error("{}:1: column `{name}` appears twice in the header", path.display())]
    DuplicateHeader {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        name: String,
    },
    /// Neither `.csv` nor `.parquet`.
    #[error("{}: unknown file type (expected .csv or .parquet)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// polars could not parse the file.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// polars' message.
        message: String,
    },
}

impl LoadError {
    /// The process exit code: bad input (the data the user named), even when it cannot be read.
    pub fn exit_code(&self) -> u8 {
        match self {
            LoadError::Remote { .. } => crate::exit::BAD_INPUT,
            LoadError::Io { .. } => crate::exit::BAD_INPUT,
            LoadError::Empty { .. } => crate::exit::BAD_INPUT,
            LoadError::NoRows { .. } => crate::exit::BAD_INPUT,
            LoadError::Ragged { .. } => crate::exit::BAD_INPUT,
            LoadError::DuplicateHeader { .. } => crate::exit::BAD_INPUT,
            LoadError::UnknownFormat { .. } => crate::exit::BAD_INPUT,
            LoadError::Parse { .. } => crate::exit::BAD_INPUT,
        }
    }
}

/// A loaded file: its frame plus what is needed to name lines in messages.
#[derive(Debug, Clone)]
pub struct Table {
    /// Where the rows came from (a path, or a description such as `synthetic:phishing`).
    pub source: String,
    /// The rows; CSV columns are all strings here, typed later against a schema.
    pub frame: DataFrame,
    /// 1-based line of each record when records span lines (quoted newlines); empty when
    /// every record is one line, so row `i` is on line `i + 2`.
    record_lines: Vec<usize>,
    /// Whether rows map onto file lines at all (CSV) or not (Parquet, generated data).
    has_lines: bool,
}

impl Table {
    /// Wraps a frame that did not come from a line-oriented file.
    pub fn from_frame(source: impl Into<String>, frame: DataFrame) -> Table {
        Table {
            source: source.into(),
            frame,
            record_lines: Vec::new(),
            has_lines: false,
        }
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.frame.height()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.frame.height() == 0
    }

    /// Names the place of 0-based data row `row` for a message: `file:LINE` for CSV,
    /// `file row N` (1-based) otherwise.
    pub fn locate(&self, row: usize) -> String {
        match (self.has_lines, self.record_lines.get(row)) {
            (true, Some(line)) => format!("{}:{line}", self.source),
            (true, None) => format!("{}:{}", self.source, row + 2),
            (false, _) => format!("{} row {}", self.source, row + 1),
        }
    }

    /// The line (CSV) or 1-based row (other sources) of data row `row`, for reports.
    pub fn line_of(&self, row: usize) -> usize {
        match (self.has_lines, self.record_lines.get(row)) {
            (true, Some(line)) => *line,
            (true, None) => row + 2,
            (false, _) => row + 1,
        }
    }
}

/// Loads a `.csv` or `.parquet` file.
pub fn load_file(path: &Path) -> Result<Table, LoadError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") | Some("txt") => load_csv(path),
        Some("parquet") | Some("pq") => load_parquet(path),
        _ => Err(LoadError::UnknownFormat {
            path: path.to_owned(),
        }),
    }
}

/// Loads a CSV file with a header line (quoted or not). Every column is read as text, so
/// that typing against the schema can name the exact row of a bad cell.
pub fn load_csv(path: &Path) -> Result<Table, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    csv_from_bytes(path, bytes)
}

/// Parses CSV bytes that did not come from a file (e.g. a request body); `path` names
/// them in messages (`request:5: ...`).
pub fn csv_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Table, LoadError> {
    let shape = scan_csv(path, &bytes, b',')?;
    let cursor = std::io::Cursor::new(bytes);
    let parse_error = |e: PolarsError| LoadError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut frame = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(cursor)
        .finish()
        .map_err(parse_error)?;
    // polars keeps a quoted header name's doubled quotes (`"a ""b"""` names `a ""b""`);
    // the names are the header's fields, unquoted as the cells are.
    if frame.width() == shape.header.len()
        && frame
            .get_column_names()
            .iter()
            .zip(&shape.header)
            .any(|(read, name)| read.as_str() != name)
    {
        frame.set_column_names(&shape.header).map_err(parse_error)?;
    }
    Ok(Table {
        source: path.display().to_string(),
        frame,
        record_lines: shape.record_lines,
        has_lines: true,
    })
}

/// Loads a Parquet file; its column types are kept and checked against the schema later.
pub fn load_parquet(path: &Path) -> Result<Table, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    parquet_from_bytes(path, bytes)
}

/// Parses Parquet bytes; `path` names them in messages.
pub fn parquet_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Table, LoadError> {
    let parse_error = |message: String| LoadError::Parse {
        path: path.to_owned(),
        message,
    };
    // polars' Parquet reader panics on some corrupt files (an `expect` on malformed thrift
    // metadata, found by fuzzing): a bad file is bad input, never a crash.
    let read =
        std::panic::catch_unwind(move || ParquetReader::new(std::io::Cursor::new(bytes)).finish());
    let frame = match read {
        Ok(frame) => frame.map_err(|e| parse_error(e.to_string()))?,
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the reader failed".into());
            return Err(parse_error(format!(
                "not a readable Parquet file ({reason})"
            )));
        }
    };
    if frame.height() == 0 {
        return Err(LoadError::NoRows {
            path: path.to_owned(),
        });
    }
    Ok(Table::from_frame(path.display().to_string(), frame))
}

struct CsvShape {
    /// The header's names, unquoted.
    header: Vec<String>,
    record_lines: Vec<usize>,
}

/// One pass over the bytes that polars does not make: it finds empty files, header-only
/// files, repeated header names and ragged records, naming the line of each.
fn scan_csv(path: &Path, bytes: &[u8], separator: u8) -> Result<CsvShape, LoadError> {
    let mut records = Records::new(bytes, separator);
    let Some((_, header)) = records.next() else {
        return Err(LoadError::Empty {
            path: path.to_owned(),
        });
    };
    let names: Vec<String> = header
        .iter()
        .map(|f| String::from_utf8_lossy(&unquote(f)).into_owned())
        .collect();
    let mut seen = std::collections::HashSet::new();
    if let Some(name) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(LoadError::DuplicateHeader {
            path: path.to_owned(),
            name: name.clone(),
        });
    }
    let mut record_lines = Vec::new();
    let mut multiline = false;
    let mut rows = 0usize;
    for (line, fields) in records {
        if fields.len() != names.len() {
            return Err(LoadError::Ragged {
                path: path.to_owned(),
                line,
                expected: names.len(),
                found: fields.len(),
            });
        }
        multiline |= line != rows + 2;
        record_lines.push(line);
        rows += 1;
    }
    if rows == 0 {
        return Err(LoadError::NoRows {
            path: path.to_owned(),
        });
    }
    if !multiline {
        record_lines = Vec::new();
    }
    Ok(CsvShape {
        header: names,
        record_lines,
    })
}

/// Iterates over CSV records as (1-based start line, fields as written, quotes included),
/// honouring double quotes; blank lines are skipped as polars does.
struct Records<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    separator: u8,
}

impl<'a> Records<'a> {
    fn new(bytes: &'a [u8], separator: u8) -> Self {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        Records {
            bytes,
            pos: 0,
            line: 1,
            separator,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = (usize, Vec<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pos >= self.bytes.len() {
                return None;
            }
            let start_line = self.line;
            let mut fields = Vec::new();
            let mut field_start = self.pos;
            let mut in_quotes = false;
            let mut i = self.pos;
            let end = loop {
                if i >= self.bytes.len() {
                    break i;
                }
                match self.bytes[i] {
                    b'"' => in_quotes = !in_quotes,
                    b'\n' if in_quotes => self.line += 1,
                    b'\n' => break i,
                    b if b == self.separator && !in_quotes => {
                        fields.push(strip_cr(&self.bytes[field_start..i]));
                        field_start = i + 1;
                    }
                    _ => {}
                }
                i += 1;
            };
            let last = strip_cr(&self.bytes[field_start..end]);
            self.pos = end + 1;
            self.line += 1;
            if fields.is_empty() && trim_field(last).is_empty() {
                continue; // blank line
            }
            fields.push(last);
            return Some((start_line, fields));
        }
    }
}

/// A field's value: a quoted field without its quotes and with `""` read as `"`.
fn unquote(field: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let quoted = field.len() >= 2 && field.starts_with(b"\"") && field.ends_with(b"\"");
    if !quoted {
        return std::borrow::Cow::Borrowed(field);
    }
    let inner = &field[1..field.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        out.push(inner[i]);
        i += if inner[i] == b'"' && inner.get(i + 1) == Some(&b'"') {
            2
        } else {
            1
        };
    }
    std::borrow::Cow::Owned(out)
}

fn strip_cr(field: &[u8]) -> &[u8] {
    field.strip_suffix(b"\r").unwrap_or(field)
}

fn trim_field(field: &[u8]) -> &[u8] {
    field
        .strip_prefix(b"\"")
        .and_then(|f| f.strip_suffix(b"\""))
        .unwrap_or(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> Result<CsvShape, LoadError> {
        scan_csv(Path::new("d.csv"), text.as_bytes(), b',')
    }

    #[test]
    fn ragged_row_names_its_line() {
        let err = scan("a,b\n1,2\n\n3\n").err().unwrap().to_string();
        assert_eq!(err, "d.csv:4: expected 2 fields as in the header, found 1");
    }

    #[test]
    fn empty_and_header_only() {
        assert!(matches!(scan(""), Err(LoadError::Empty { .. })));
        assert!(matches!(scan("\n\n"), Err(LoadError::Empty { .. })));
        assert!(matches!(
            scan("\"a\",\"b\"\n"),
            Err(LoadError::NoRows { .. })
        ));
    }

    #[test]
    fn quoted_separator_and_newline() {
        let shape = scan("a,b\n\"x,y\",2\n\"multi\nline\",3\n4,5\n")
            .ok()
            .unwrap();
        assert_eq!(shape.record_lines, vec![2, 3, 5]);
    }

    #[test]
    fn repeated_header_name() {
        let err = scan("a,b,a\n1,2,3\n").err().unwrap().to_string();
        assert!(err.contains("`a` appears twice"), "{err}");
    }
}
