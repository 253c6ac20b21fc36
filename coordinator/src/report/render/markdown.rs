//! A GitHub-flavoured Markdown table: title line, the table, notes as a list.

use super::Layout;

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

pub fn render(layout: &Layout) -> String {
    let header: Vec<String> = layout
        .columns
        .iter()
        .map(|c| {
            escape(&match &c.group {
                Some(group) => format!("{group} {}", c.name),
                None => c.name.clone(),
            })
        })
        .collect();
    let rule: Vec<&str> = layout.columns.iter().map(|c| if c.numeric { "---:" } else { ":---" }).collect();
    let mut out = String::new();
    if !layout.title.is_empty() {
        out.push_str(&format!("{}\n\n", escape(&layout.title)));
    }
    out.push_str(&format!("| {} |\n|{}|\n", header.join(" | "), rule.join("|")));
    for row in &layout.rows {
        let cells: Vec<String> = row.iter().map(|c| escape(c)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    if !layout.notes.is_empty() {
        out.push('\n');
        for note in &layout.notes {
            out.push_str(&format!("- {}\n", escape(note)));
        }
    }
    out
}
