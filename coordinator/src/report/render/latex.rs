//! A LaTeX `table` float with a booktabs `tabular`: grouped column values
//! become `\multicolumn` headers with `\cmidrule`s, as in the paper.
//! Needs `\usepackage{booktabs}`; notes become comments.

use super::Layout;

/// Escapes LaTeX's special characters, then typesets the two symbols cell
/// texts use (± and Δ) in math mode.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '±' => out.push_str("$\\pm$"),
            'Δ' => out.push_str("$\\Delta$"),
            '†' => out.push_str("\\dag{}"),
            '‡' => out.push_str("\\ddag{}"),
            c => out.push(c),
        }
    }
    out
}

pub fn render(layout: &Layout) -> String {
    let spec: String = layout.columns.iter().map(|c| if c.numeric { 'r' } else { 'l' }).collect();
    let mut out = String::new();
    out.push_str("% widesweep table; needs \\usepackage{booktabs}\n");
    out.push_str("\\begin{table}[t]\n\\centering\n");
    if !layout.title.is_empty() {
        out.push_str(&format!("\\caption{{{}}}\n", escape(&layout.title)));
    }
    out.push_str(&format!("\\begin{{tabular}}{{{spec}}}\n\\toprule\n"));

    // Runs of consecutive columns of one group: (group, first, last), 1-based.
    let mut runs: Vec<(Option<&str>, usize, usize)> = Vec::new();
    for (i, column) in layout.columns.iter().enumerate() {
        match runs.last_mut() {
            Some((group, _, last)) if *group == column.group.as_deref() && group.is_some() => *last = i + 1,
            _ => runs.push((column.group.as_deref(), i + 1, i + 1)),
        }
    }
    if runs.iter().any(|(group, ..)| group.is_some()) {
        let cells: Vec<String> = runs
            .iter()
            .map(|(group, first, last)| match group {
                Some(group) => format!("\\multicolumn{{{}}}{{c}}{{{}}}", last - first + 1, escape(group)),
                None => String::new(),
            })
            .collect();
        out.push_str(&format!("{} \\\\\n", cells.join(" & ")));
        let rules: Vec<String> = runs
            .iter()
            .filter(|(group, ..)| group.is_some())
            .map(|(_, first, last)| format!("\\cmidrule(lr){{{first}-{last}}}"))
            .collect();
        out.push_str(&format!("{}\n", rules.join(" ")));
    }
    let header: Vec<String> = layout.columns.iter().map(|c| escape(&c.name)).collect();
    out.push_str(&format!("{} \\\\\n\\midrule\n", header.join(" & ")));
    for row in &layout.rows {
        let cells: Vec<String> = row.iter().map(|c| escape(c)).collect();
        out.push_str(&format!("{} \\\\\n", cells.join(" & ")));
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    for note in &layout.notes {
        out.push_str(&format!("% {note}\n"));
    }
    out
}
