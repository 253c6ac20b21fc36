//! A table for the terminal (comfy-table), with its title above and its
//! legend and notes below.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use super::Layout;

pub fn render(layout: &Layout) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(layout.columns.iter().map(|c| match &c.group {
        Some(group) => Cell::new(format!("{group}\n{}", c.name)),
        None => Cell::new(&c.name),
    }));
    for row in &layout.rows {
        table.add_row(layout.columns.iter().zip(row).map(|(column, text)| {
            let cell = Cell::new(text);
            if column.numeric { cell.set_alignment(CellAlignment::Right) } else { cell }
        }));
    }
    let mut out = String::new();
    if !layout.title.is_empty() {
        out.push_str(&layout.title);
        out.push('\n');
    }
    out.push_str(&format!("{table}\n"));
    for note in &layout.notes {
        out.push_str(note);
        out.push('\n');
    }
    out
}
