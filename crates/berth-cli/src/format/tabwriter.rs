//! Go's `text/tabwriter` as docker configures it (`NewWriter(out, 10, 1, 3, ' ', 0)`):
//! tab-terminated cells are padded to the widest cell of their column block plus 3, at
//! least 10; the last cell of a line is not part of any column. A column block is a run of
//! consecutive lines that have a cell in that column, so a line with fewer cells ends the
//! blocks to its right, exactly as Go's recursive `format` does. Widths count runes.

/// Docker's settings.
pub const MIN_WIDTH: usize = 10;
pub const PADDING: usize = 3;

/// Align `text` (lines of `\t`-separated cells) the way docker's table output does.
pub fn align(text: &str) -> String {
    align_with(text, MIN_WIDTH, PADDING)
}

/// Align with explicit minimum width and padding.
pub fn align_with(text: &str, minwidth: usize, padding: usize) -> String {
    let ends_nl = text.ends_with('\n');
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<Vec<&str>> = body.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format(
        &lines,
        0,
        lines.len(),
        &mut widths,
        minwidth,
        padding,
        &mut out,
    );
    // Every written line ended with a newline; the input's last line may not have.
    if !ends_nl && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn format(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut w = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            w = w.max(width(lines[this][column]) + padding);
            this += 1;
        }
        widths.push(w);
        format(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                let pad = widths[j].saturating_sub(width(cell));
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_ps_empty_header() {
        let h = "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n";
        assert_eq!(
            align(h),
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
    }

    #[test]
    fn columns_take_widest_cell() {
        let t = "A\tB\tC\nlonger-value\tx\ty\n";
        assert_eq!(
            align(t),
            "A              B         C\nlonger-value   x         y\n"
        );
    }

    #[test]
    fn single_cell_line_breaks_blocks() {
        let t = "aaaaaaaaaaaaaa\tb\nsolo\nc\td\n";
        assert_eq!(align(t), "aaaaaaaaaaaaaa   b\nsolo\nc         d\n");
    }

    #[test]
    fn unicode_counts_runes() {
        let t = "\"sh -c 'while…\"\tx\nab\ty\n";
        assert_eq!(align(t), "\"sh -c 'while…\"   x\nab                y\n");
    }

    #[test]
    fn trailing_empty_cell_still_pads() {
        let t = "A\t\tC\n";
        assert_eq!(align(t), "A                   C\n");
    }
}
