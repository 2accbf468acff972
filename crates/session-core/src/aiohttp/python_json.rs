//! JSON written exactly as Python's `json.dumps` writes it with its default
//! arguments, which is what aiohttp_session stores.
//!
//! Python's defaults differ from serde_json's compact output in three ways:
//!
//! * separators: `", "` between items and `": "` between a key and its value;
//! * `ensure_ascii=True`: every character outside printable ASCII is escaped
//!   as `\uXXXX` (lowercase hex, UTF-16 surrogate pairs beyond the BMP), and
//!   `\b \f \n \r \t` use their short forms;
//! * floats are written as Python's `repr(float)`: the shortest digits that
//!   round-trip (as serde_json does) but laid out by Python's rules, e.g.
//!   `1e+16`, `1e-05`, `100.0`.
//!
//! Integers are the same in both. Object keys come out in the map's order;
//! Python keeps insertion order, so "the same bytes" means "for the same
//! dict in the same key order".

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// `value` as Python's `json.dumps(value)` writes it with its default
/// arguments: `", "` and `": "` separators, everything outside printable
/// ASCII escaped as `\uXXXX`, floats as Python's `repr`. Object keys come
/// out in the map's order.
///
/// ```
/// use serde_json::json;
/// use session_core::aiohttp::to_python_json;
///
/// let value = json!({"a": [1, 0.1, 1e16, 1e-05], "ü": "🦀"});
/// assert_eq!(
///     to_python_json(&value)?,
///     r#"{"a": [1, 0.1, 1e+16, 1e-05], "\u00fc": "\ud83e\udd80"}"#,
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// # Errors
///
/// The value's own serialization errors (a map with non-string keys, a
/// failing `Serialize` implementation).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    value.serialize(&mut Serializer::with_formatter(&mut out, PythonFormatter))?;
    // Everything written is ASCII: escapes, digits and punctuation.
    String::from_utf8(out).map_err(|_| serde::ser::Error::custom("non-ASCII output"))
}

/// A serde_json [`Formatter`] with `json.dumps`'s default layout.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f32<W: ?Sized + Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        // Python has no single precision: the value is a double there.
        self.write_f64(writer, f64::from(value))
    }

    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(float_repr(value).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json has already escaped `"`, `\` and control characters;
        // what is left to escape is everything beyond printable ASCII.
        let mut plain_from = 0;
        for (at, ch) in fragment.char_indices() {
            if is_plain(ch) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[plain_from..at])?;
            write_escaped(writer, ch)?;
            plain_from = at + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[plain_from..])
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let ch = match char_escape {
            CharEscape::Quote => '"',
            CharEscape::ReverseSolidus => '\\',
            // Python does not escape `/` (serde_json does not either).
            CharEscape::Solidus => return writer.write_all(b"/"),
            CharEscape::Backspace => '\u{8}',
            CharEscape::FormFeed => '\u{c}',
            CharEscape::LineFeed => '\n',
            CharEscape::CarriageReturn => '\r',
            CharEscape::Tab => '\t',
            CharEscape::AsciiControl(byte) => char::from(byte),
        };
        write_escaped(writer, ch)
    }
}

/// Whether Python writes `ch` as itself inside a string: printable ASCII
/// other than `"` and `\` (its `ESCAPE_ASCII` is `([\\"]|[^\ -~])`).
fn is_plain(ch: char) -> bool {
    matches!(ch, ' '..='~') && ch != '"' && ch != '\\'
}

/// `ch` escaped as Python's `py_encode_basestring_ascii` escapes it.
fn write_escaped<W: ?Sized + Write>(writer: &mut W, ch: char) -> io::Result<()> {
    let short: &[u8] = match ch {
        '"' => b"\\\"",
        '\\' => b"\\\\",
        '\n' => b"\\n",
        '\r' => b"\\r",
        '\t' => b"\\t",
        '\u{8}' => b"\\b",
        '\u{c}' => b"\\f",
        _ => {
            let mut units = [0_u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            return Ok(());
        }
    };
    writer.write_all(short)
}

/// `repr(value)` in Python 3, for a finite float.
///
/// Both Rust and Python find the shortest digits that read back as the same
/// double; they differ in layout only. Python (`float_repr_style = 'short'`)
/// writes positional notation when the decimal point falls within
/// `-4 < decpt <= 16` digits of the first significant digit, always with a
/// fractional part (`100.0`), and otherwise scientific notation with a signed
/// exponent of at least two digits (`1e+16`, `1.5e-07`).
fn float_repr(value: f64) -> String {
    if !value.is_finite() {
        // serde_json writes non-finite floats as null before asking us; and
        // serde_json values cannot hold them at all.
        return "null".to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e3", "1e-7", "0e0".
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    // Where the decimal point goes, counted from the first digit.
    let decpt = exponent + 1;
    let mut out = String::with_capacity(digits.len() + 8);
    if value.is_sign_negative() {
        out.push('-');
    }
    let len = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', decpt.unsigned_abs() as usize));
            out.push_str(&digits);
        } else if decpt < len {
            let (int, frac) = digits.split_at(decpt.unsigned_abs() as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        } else {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n(
                '0',
                (decpt - len).unsigned_abs() as usize,
            ));
            out.push_str(".0");
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let exponent = decpt - 1;
        out.push_str(if exponent < 0 { "e-" } else { "e+" });
        out.push_str(&format!("{:02}", exponent.unsigned_abs()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn floats_are_laid_out_as_python_repr() {
        for (value, python) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123_456_789.012_345_68, "123456789.01234569"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e100, "1e+100"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(float_repr(value), python, "{value:e}");
        }
    }

    #[test]
    fn layout_and_escapes_are_pythons() {
        let value = json!({"a": [1, -2, 2.5, true, false, null, {}], "é\n\"\\/\u{7f}🦀\u{1}": "x"});
        assert_eq!(
            to_string(&value).unwrap(),
            r#"{"a": [1, -2, 2.5, true, false, null, {}], "\u00e9\n\"\\/\u007f\ud83e\udd80\u0001": "x"}"#
        );
        let empty: Value = json!({"list": [], "map": {}});
        assert_eq!(to_string(&empty).unwrap(), r#"{"list": [], "map": {}}"#);
    }

    /// A small deterministic generator (xorshift64*), so that the random
    /// cases are the same on every run.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn char(&mut self) -> char {
            loop {
                // Mostly ASCII and the BMP, some beyond it.
                let limit = match self.next() % 4 {
                    0 => 0x80,
                    1 => 0x800,
                    2 => 0x1_0000,
                    _ => 0x11_0000,
                };
                let code = u32::try_from(self.next() % limit).unwrap();
                if let Some(ch) = char::from_u32(code) {
                    return ch;
                }
            }
        }
    }

    /// The interpreter of the virtual environment that `cargo xtask test`
    /// creates (it passes it in `SESSION_TEST_PYTHON`).
    fn python() -> std::path::PathBuf {
        if let Some(path) = std::env::var_os("SESSION_TEST_PYTHON") {
            return path.into();
        }
        let fallback = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/python-venv/bin/python");
        assert!(
            fallback.is_file(),
            "these tests compare with Python's json module: run `cargo xtask test`, which \
             creates target/python-venv and sets SESSION_TEST_PYTHON, or set it to a Python 3"
        );
        fallback
    }

    /// Runs `script` under Python with `input` on stdin; its stdout lines.
    fn run_python(script: &str, input: &str) -> Vec<String> {
        use std::process::{Command, Stdio};
        let mut child = Command::new(python())
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start Python");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_owned();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output().expect("run Python");
        writer.join().unwrap().unwrap();
        assert!(
            output.status.success(),
            "Python failed: {:?}",
            output.status
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// What Rust writes, Python writes identically: `json.dumps(json.loads(ours))`
    /// gives back our bytes for every value.
    #[test]
    fn python_rewrites_what_we_write_byte_for_byte() {
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        let mut values = vec![
            json!(9_007_199_254_740_993_i64),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(-0.0),
            json!(0.1),
            json!(1e16),
            json!(1e-5),
            json!(123.456e-300),
            json!((0..0x80).filter_map(char::from_u32).collect::<String>()),
            json!("\u{7f}\u{80}\u{ff}\u{100}\u{2028}\u{2029}\u{feff}\u{ffff}"),
            json!("\u{1_0000}\u{1_f980}\u{10_ffff} 😀 ключ"),
            json!({"nested": {"list": [1, [2, [3, {}]], []], "t": true, "f": false, "n": null}}),
            json!({"": "", "z": 1, "a": 2, "é": 3, "🦀": 4}),
        ];
        for _ in 0..2000 {
            let float = f64::from_bits(rng.next());
            if float.is_finite() {
                values.push(json!(float));
            }
        }
        for _ in 0..300 {
            let len = rng.next() % 24;
            let text: String = (0..len).map(|_| rng.char()).collect();
            let key: String = (0..len % 5).map(|_| rng.char()).collect();
            values.push(json!({ key: text }));
        }
        let lines: Vec<String> = values
            .iter()
            .map(|value| {
                to_string(&json!({"created": 1_700_000_000, "session": {"v": value}})).unwrap()
            })
            .collect();
        let script = "import json, sys\n\
                      for line in sys.stdin:\n    print(json.dumps(json.loads(line)))";
        let python = run_python(script, &(lines.join("\n") + "\n"));
        assert_eq!(python.len(), lines.len());
        for (ours, theirs) in lines.iter().zip(&python) {
            assert_eq!(ours, theirs);
        }
    }

    /// What Python writes, we rewrite identically: values Python generates
    /// (random doubles, random text, integers) read and written back by us
    /// give Python's bytes. Keys are sorted, as serde_json's map keeps them.
    #[test]
    fn we_rewrite_what_python_writes_byte_for_byte() {
        let script = r#"
import json, math, random, struct
rng = random.Random(20240611)
def text(n):
    out = []
    while len(out) < n:
        c = rng.choice([0x80, 0x800, 0x10000, 0x110000])
        c = rng.randrange(c)
        if not 0xD800 <= c <= 0xDFFF:
            out.append(chr(c))
    return "".join(out)
for _ in range(2000):
    f = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
    if math.isfinite(f):
        print(json.dumps({"created": 1700000000, "session": {"f": f, "g": [f / 3, -f]}}, sort_keys=True))
for _ in range(500):
    value = {text(3): text(rng.randrange(30)), "i": rng.randrange(-2**63, 2**64),
             "nested": {"b": rng.random() < 0.5, "n": None, "x": [rng.random(), 10.0 ** rng.randrange(-30, 30)]}}
    print(json.dumps({"created": rng.randrange(2**40), "session": value}, sort_keys=True))
"#;
        let lines = run_python(script, "");
        assert!(lines.len() > 2000, "{} lines", lines.len());
        for line in &lines {
            let value: Value = serde_json::from_str(line).unwrap();
            assert_eq!(&to_string(&value).unwrap(), line);
        }
    }
}
