//! The confusion matrix and the ROC curve of a model as small PNG images, which the MLflow
//! UI previews among a run's artifacts. Drawn into an RGB buffer with a built-in 5x7 pixel
//! font and encoded with the `png` crate: two plain charts do not justify a plotting
//! library and its font stack.

use crate::models::metrics::Confusion;

/// An RGB colour.
type Rgb = [u8; 3];

const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [30, 30, 30];
const GREY: Rgb = [170, 170, 170];
const LIGHT: Rgb = [230, 230, 230];
const BLUE: Rgb = [31, 119, 180];
const RED: Rgb = [214, 39, 40];

/// A picture being drawn.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![255; width * height * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, color: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.pixels[i..i + 3].copy_from_slice(&color);
        }
    }

    fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, color);
            }
        }
    }

    /// A line `thick` pixels wide; every `dash`-th run of 6 pixels is skipped when dashed.
    fn line(&mut self, from: (f64, f64), to: (f64, f64), thick: i64, color: Rgb, dashed: bool) {
        let steps = ((to.0 - from.0).abs().max((to.1 - from.1).abs()).ceil() as i64).max(1);
        for s in 0..=steps {
            if dashed && (s / 6) % 2 == 1 {
                continue;
            }
            let t = s as f64 / steps as f64;
            let x = (from.0 + (to.0 - from.0) * t).round() as i64;
            let y = (from.1 + (to.1 - from.1) * t).round() as i64;
            self.rect(x - thick / 2, y - thick / 2, thick, thick, color);
        }
    }

    /// Text in capitals at (x, y) (top left), each font pixel drawn `scale` wide.
    fn text(&mut self, x: i64, y: i64, scale: i64, color: Rgb, text: &str) {
        for (i, c) in text.chars().enumerate() {
            let rows = glyph(c.to_ascii_uppercase());
            let left = x + i as i64 * 6 * scale;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        self.rect(
                            left + col * scale,
                            y + r as i64 * scale,
                            scale,
                            scale,
                            color,
                        );
                    }
                }
            }
        }
    }

    /// Text centred on `cx`.
    fn text_centered(&mut self, cx: i64, y: i64, scale: i64, color: Rgb, text: &str) {
        let width = text.chars().count() as i64 * 6 * scale - scale;
        self.text(cx - width / 2, y, scale, color, text);
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Writing into a Vec cannot fail for a buffer of the declared size.
        let written = encoder
            .write_header()
            .and_then(|mut w| w.write_image_data(&self.pixels));
        if written.is_err() {
            out.clear();
        }
        out
    }
}

/// A PNG of the confusion matrix; `positive` and `negative` name the classes.
pub fn confusion_matrix_png(c: &Confusion, positive: &str, negative: &str) -> Vec<u8> {
    let (w, h) = (560usize, 420usize);
    let mut canvas = Canvas::new(w, h);
    canvas.text_centered(w as i64 / 2, 16, 2, BLACK, "CONFUSION MATRIX (TEST SET)");
    let (left, top, cell) = (200i64, 90i64, 150i64);
    let rows = [(positive, [c.tp, c.fn_]), (negative, [c.fp, c.tn])];
    canvas.text_centered(left + cell, 52, 2, BLACK, "PREDICTED");
    for (j, name) in [positive, negative].iter().enumerate() {
        canvas.text_centered(left + cell / 2 + j as i64 * cell, 74, 1, BLACK, name);
    }
    for (i, (name, counts)) in rows.iter().enumerate() {
        let total = counts.iter().sum::<u64>().max(1) as f64;
        let y = top + i as i64 * cell;
        canvas.text(20, y + cell / 2 - 16, 2, BLACK, "ACTUAL");
        canvas.text(20, y + cell / 2 + 6, 1, BLACK, name);
        for (j, &n) in counts.iter().enumerate() {
            let share = n as f64 / total;
            let shade = |base: u8| (255.0 - (255.0 - f64::from(base)) * share) as u8;
            let color = [shade(BLUE[0]), shade(BLUE[1]), shade(BLUE[2])];
            let x = left + j as i64 * cell;
            canvas.rect(x, y, cell - 2, cell - 2, color);
            let ink = if share > 0.5 { WHITE } else { BLACK };
            canvas.text_centered(x + cell / 2, y + cell / 2 - 18, 3, ink, &n.to_string());
            canvas.text_centered(
                x + cell / 2,
                y + cell / 2 + 14,
                2,
                ink,
                &format!("{:.1}%", share * 100.0),
            );
        }
    }
    canvas.encode()
}

/// A PNG of a K×K confusion matrix (`confusion[true][predicted]`), each row shaded by its
/// share so that a rare class's misses show as plainly as a common one's; counts are
/// written where the cells are large enough to hold them.
pub fn class_confusion_png(names: &[String], confusion: &[Vec<u64>]) -> Vec<u8> {
    let k = confusion.len().max(1) as i64;
    let cell = (640 / k).clamp(14, 90);
    let label_chars = 14usize;
    let left = 30 + label_chars as i64 * 6 + 10;
    let top = 70i64;
    let (w, h) = (
        (left + k * cell + 30).max(420) as usize,
        (top + k * cell + 40 + label_chars as i64 * 6) as usize,
    );
    let mut canvas = Canvas::new(w, h);
    canvas.text_centered(w as i64 / 2, 16, 2, BLACK, "CONFUSION MATRIX (TEST SET)");
    canvas.text(
        left,
        48,
        1,
        BLACK,
        "PREDICTED ->   ROWS: ACTUAL, SHADED BY ROW SHARE",
    );
    let short = |name: &str| -> String { name.chars().take(label_chars).collect() };
    for (i, row) in confusion.iter().enumerate() {
        let y = top + i as i64 * cell;
        let name = names.get(i).map(String::as_str).unwrap_or("?");
        canvas.text(30, y + cell / 2 - 3, 1, BLACK, &short(name));
        let total = row.iter().sum::<u64>().max(1) as f64;
        for (j, &n) in row.iter().enumerate() {
            let share = n as f64 / total;
            let shade = |base: u8| (255.0 - (255.0 - f64::from(base)) * share) as u8;
            let color = [shade(BLUE[0]), shade(BLUE[1]), shade(BLUE[2])];
            let x = left + j as i64 * cell;
            canvas.rect(x, y, cell - 1, cell - 1, color);
            let text = n.to_string();
            if (text.len() as i64) * 6 + 2 <= cell && cell >= 12 {
                let ink = if share > 0.5 { WHITE } else { BLACK };
                canvas.text_centered(x + cell / 2, y + cell / 2 - 3, 1, ink, &text);
            }
        }
    }
    // Column names, written downwards one character per line under each column.
    let bottom = top + k * cell + 8;
    for (j, name) in names.iter().enumerate().take(k as usize) {
        let x = left + j as i64 * cell + cell / 2 - 2;
        for (r, c) in short(name).chars().enumerate() {
            canvas.text(x, bottom + r as i64 * 8, 1, GREY, &c.to_string());
        }
    }
    canvas.encode()
}

/// Points (false positive rate, true positive rate) of the ROC curve of `scores`
/// (P(attack)) against `labels`, from (0, 0) to (1, 1), one per distinct score.
pub fn roc_points(labels: &[bool], scores: &[f64]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..labels.len().min(scores.len())).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let positives = order.iter().filter(|&&i| labels[i]).count().max(1) as f64;
    let negatives = order.iter().filter(|&&i| !labels[i]).count().max(1) as f64;
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_score = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_score {
            points.push((fp / negatives, tp / positives));
        }
    }
    if points.last() != Some(&(1.0, 1.0)) {
        points.push((1.0, 1.0));
    }
    points
}

/// A PNG of the ROC curve with its area in the title.
pub fn roc_curve_png(labels: &[bool], scores: &[f64], cut: Option<f64>) -> Vec<u8> {
    let points = roc_points(labels, scores);
    let auc: f64 = points
        .windows(2)
        .map(|p| (p[1].0 - p[0].0) * (p[1].1 + p[0].1) / 2.0)
        .sum();
    let (w, h) = (520usize, 520usize);
    let mut canvas = Canvas::new(w, h);
    canvas.text_centered(
        w as i64 / 2,
        14,
        2,
        BLACK,
        &format!("ROC CURVE (TEST SET)  AUC {auc:.4}"),
    );
    let (left, top, side) = (70.0, 60.0, 400.0);
    let at = |fpr: f64, tpr: f64| (left + fpr * side, top + (1.0 - tpr) * side);
    for k in 0..=4 {
        let v = f64::from(k) / 4.0;
        canvas.line(at(v, 0.0), at(v, 1.0), 1, LIGHT, false);
        canvas.line(at(0.0, v), at(1.0, v), 1, LIGHT, false);
        let label = format!("{v:.2}");
        let (x, y) = at(v, 0.0);
        canvas.text_centered(x as i64, y as i64 + 8, 1, BLACK, &label);
        let (x, y) = at(0.0, v);
        canvas.text(x as i64 - 34, y as i64 - 3, 1, BLACK, &label);
    }
    canvas.line(at(0.0, 0.0), at(1.0, 1.0), 1, GREY, true);
    canvas.line(at(0.0, 0.0), at(1.0, 0.0), 2, BLACK, false);
    canvas.line(at(0.0, 0.0), at(0.0, 1.0), 2, BLACK, false);
    for pair in points.windows(2) {
        canvas.line(
            at(pair[0].0, pair[0].1),
            at(pair[1].0, pair[1].1),
            3,
            BLUE,
            false,
        );
    }
    canvas.text_centered(
        (left + side / 2.0) as i64,
        (top + side) as i64 + 28,
        2,
        BLACK,
        "FALSE POSITIVE RATE",
    );
    canvas.text(8, 40, 1, BLACK, "TRUE POSITIVE RATE");
    if let Some(threshold) = cut {
        // The operating point: a red square where the model's cut sits on this curve.
        let rates = crate::models::operating_point::Rates::at(labels, scores, threshold);
        let (x, y) = at(rates.fpr(), rates.detection_rate());
        canvas.rect(x as i64 - 5, y as i64 - 5, 11, 11, RED);
        canvas.text(
            (left + 12.0) as i64,
            (top + side) as i64 - 14,
            1,
            RED,
            &format!(
                "OPERATING POINT P >= {threshold:.4}  FPR {:.5}  TPR {:.4}",
                rates.fpr(),
                rates.detection_rate()
            ),
        );
    }
    canvas.encode()
}

/// Rows of a 5x7 glyph (bit 4 is the leftmost column); unknown characters are blank.
fn glyph(c: char) -> [u8; 7] {
    match c {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [30, 17, 17, 17, 17, 17, 30],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 10, 4, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '/' => [1, 2, 2, 4, 8, 8, 16],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        _ => [0; 7],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_of_a_perfect_and_a_useless_score() {
        let labels = [true, true, false, false];
        let perfect = roc_points(&labels, &[0.9, 0.8, 0.2, 0.1]);
        assert!(perfect.contains(&(0.0, 1.0)));
        let flat = roc_points(&labels, &[0.5; 4]);
        assert_eq!(flat, vec![(0.0, 0.0), (1.0, 1.0)]);
    }

    #[test]
    fn pngs_have_the_png_signature() {
        let c = Confusion {
            tp: 5,
            fp: 1,
            fn_: 2,
            tn: 9,
        };
        let png = confusion_matrix_png(&c, "phishing", "legitimate");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let png = roc_curve_png(&[true, false], &[0.8, 0.3], None);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
