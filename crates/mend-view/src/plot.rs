//! SVG plots drawn by mend itself: horizontal bars (resolved per repository, exit
//! statuses) and histograms (cost, time). Inline SVG, no script, no external font.
use std::fmt::Write;

use crate::html::escape;

/// One bar: a label, a filled part and the whole (`part <= whole`).
pub struct Bar {
    pub label: String,
    pub part: f64,
    pub whole: f64,
    /// The text at the bar's end (e.g. "3/4").
    pub note: String,
}

const ROW: f64 = 22.0;
const LABEL_W: f64 = 190.0;
const BAR_W: f64 = 320.0;
const NOTE_W: f64 = 90.0;

/// Horizontal bars, each `part` filled over a track of `whole`, scaled to the largest whole.
pub fn bars(title: &str, bars: &[Bar]) -> String {
    let max = bars.iter().map(|b| b.whole).fold(0.0_f64, f64::max);
    let h = ROW * bars.len() as f64 + 8.0;
    let w = LABEL_W + BAR_W + NOTE_W;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"plot bars\" role=\"img\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
        escape(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let track = if max > 0.0 {
            BAR_W * b.whole / max
        } else {
            0.0
        };
        let fill = if max > 0.0 {
            BAR_W * b.part.min(b.whole).max(0.0) / max
        } else {
            0.0
        };
        let label: String = b.label.chars().take(30).collect();
        let _ = write!(
            s,
            "<g class=\"bar\"><title>{}: {}</title><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect class=\"track\" x=\"{LABEL_W}\" y=\"{y}\" width=\"{track:.1}\" height=\"{}\"/>\
             <rect class=\"fill\" x=\"{LABEL_W}\" y=\"{y}\" width=\"{fill:.1}\" height=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}</text></g>",
            escape(&b.label),
            escape(&b.note),
            LABEL_W - 6.0,
            y + 14.0,
            escape(&label),
            ROW - 6.0,
            ROW - 6.0,
            LABEL_W + track + 6.0,
            y + 14.0,
            escape(&b.note),
        );
    }
    s.push_str("</svg>");
    s
}

/// Bin edges for `values` over `[min, max]`, at most `bins` bins.
fn binned(values: &[f64], bins: usize) -> (f64, f64, Vec<usize>) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() || !lo.is_finite() || !hi.is_finite() {
        return (0.0, 0.0, vec![]);
    }
    let bins = if hi > lo { bins.max(1) } else { 1 };
    let width = if hi > lo {
        (hi - lo) / bins as f64
    } else {
        1.0
    };
    let mut counts = vec![0usize; bins];
    for v in values {
        let i = (((v - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    (lo, hi, counts)
}

/// A histogram of `values` (non-finite ones ignored) with `fmt` labelling the axis ends.
pub fn histogram(title: &str, values: &[f64], bins: usize, fmt: &dyn Fn(f64) -> String) -> String {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi, counts) = binned(&values, bins);
    let (w, h, pad) = (420.0, 150.0, 24.0);
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"plot hist\" role=\"img\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
        escape(title)
    );
    let plot_w = w - 2.0 * pad;
    let plot_h = h - 2.0 * pad;
    let bw = if counts.is_empty() {
        0.0
    } else {
        plot_w / counts.len() as f64
    };
    let step = if counts.is_empty() {
        0.0
    } else {
        (hi - lo) / counts.len() as f64
    };
    for (i, c) in counts.iter().enumerate() {
        let bh = plot_h * *c as f64 / top;
        let x = pad + bw * i as f64;
        let (a, b) = (lo + step * i as f64, lo + step * (i + 1) as f64);
        let _ = write!(
            s,
            "<rect class=\"fill\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{}–{}: {c}</title></rect>",
            x + 1.0,
            pad + plot_h - bh,
            (bw - 2.0).max(1.0),
            escape(&fmt(a)),
            escape(&fmt(b)),
        );
    }
    let _ = write!(
        s,
        "<line class=\"axis\" x1=\"{pad}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"/>\
         <text x=\"{pad}\" y=\"{ty}\">{}</text><text x=\"{x2}\" y=\"{ty}\" text-anchor=\"end\">{}</text>\
         <text x=\"{pad}\" y=\"14\">{} instances; tallest bar {}</text></svg>",
        escape(&fmt(lo)),
        escape(&fmt(hi)),
        values.len(),
        counts.iter().max().unwrap_or(&0),
        y = pad + plot_h,
        x2 = pad + plot_w,
        ty = h - 6.0,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_whole_and_escape_labels() {
        let svg = bars(
            "resolved",
            &[
                Bar {
                    label: "a/<b>".into(),
                    part: 1.0,
                    whole: 2.0,
                    note: "1/2".into(),
                },
                Bar {
                    label: "c/d".into(),
                    part: 4.0,
                    whole: 4.0,
                    note: "4/4".into(),
                },
            ],
        );
        assert!(svg.contains("a/&lt;b&gt;"), "{svg}");
        assert!(
            svg.contains(&format!("width=\"{:.1}\"", BAR_W / 2.0)),
            "{svg}"
        );
        assert!(svg.contains(&format!("width=\"{:.1}\"", BAR_W)), "{svg}");
        assert_eq!(svg.matches("<g class=\"bar\">").count(), 2);
    }

    #[test]
    fn histogram_counts_every_value_once() {
        let (lo, hi, counts) = binned(&[0.0, 1.0, 2.0, 3.0, 10.0], 5);
        assert_eq!((lo, hi), (0.0, 10.0));
        assert_eq!(counts, vec![2, 2, 0, 0, 1]);
        assert_eq!(binned(&[5.0, 5.0], 8).2, vec![2]);
        assert!(binned(&[], 8).2.is_empty());
        let svg = histogram("cost", &[1.0, f64::NAN, 2.0], 4, &|v| format!("${v:.2}"));
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains("$1.00") && svg.contains("$2.00"), "{svg}");
    }
}
