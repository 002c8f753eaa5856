//! Your marks: the results marked alike or not alike to their queries, kept with the
//! index. Lists them (each removable), undoes, exports and imports them, and retrains the
//! model from them.

use super::Intent;
use crate::app::state::AppState;
use crate::app::widgets::file_name;
use crate::worker::JobKind;

pub fn marks_ui(ui: &mut egui::Ui, state: &mut AppState, intents: &mut Vec<Intent>) {
    ui.heading("Your marks");
    if !state.marks.is_open() {
        ui.label("Marks are kept with an index: build or open one, then mark results.");
        return;
    }
    let marks = state.marks.all();
    if marks.marks.is_empty() {
        ui.label(
            "Mark results Alike or Not alike (or hover a result and press A or N) to teach \
             Likeness what you mean by alike.",
        );
    } else {
        ui.label(format!(
            "{} marks: {} alike, {} not alike",
            marks.marks.len(),
            marks.alike(),
            marks.not_alike()
        ));
        egui::CollapsingHeader::new("Show the marks")
            .id_salt("marks_list")
            .show(ui, |ui| {
                // Never wider than the column: long file names are cut, not allowed to
                // widen the panel (it remembers its width across restarts).
                egui::ScrollArea::vertical()
                    .max_height(180.0)
                    .max_width(ui.available_width())
                    .id_salt("marks_scroll")
                    .show(ui, |ui| {
                        for (i, mark) in marks.marks.iter().enumerate() {
                            ui.horizontal(|ui| {
                                if ui
                                    .small_button("Remove")
                                    .on_hover_text("Forget this mark")
                                    .clicked()
                                {
                                    intents.push(Intent::RemoveMark(i));
                                }
                                let verdict = if mark.alike { "alike" } else { "not alike" };
                                ui.add(
                                    egui::Label::new(format!(
                                        "{} {verdict} to {}",
                                        file_name(&mark.photo),
                                        file_name(&mark.query)
                                    ))
                                    .truncate(),
                                )
                                .on_hover_text(format!(
                                    "{}\n{verdict} to\n{}",
                                    mark.photo.display(),
                                    mark.query.display()
                                ));
                            });
                        }
                    });
            });
    }
    ui.horizontal(|ui| {
        if ui
            .add_enabled(state.marks.can_undo(), egui::Button::new("Undo"))
            .on_hover_text("Take back the last mark (Ctrl+Z)")
            .clicked()
        {
            intents.push(Intent::UndoMark);
        }
        if ui
            .add_enabled(!marks.marks.is_empty(), egui::Button::new("Export…"))
            .on_hover_text("Save the marks as JSON, to keep with the photos or share")
            .clicked()
        {
            intents.push(Intent::ExportMarks);
        }
        if ui
            .button("Import…")
            .on_hover_text("Add the marks of a marks JSON file")
            .clicked()
        {
            intents.push(Intent::ImportMarks);
        }
    });
    let retraining = state.running(JobKind::FineTune).is_some();
    ui.horizontal(|ui| {
        let can = !state.marks.is_empty() && state.current.model.is_some() && state.is_idle();
        if ui
            .add_enabled(can, egui::Button::new("Retrain with my marks"))
            .on_hover_text(
                "Fine-tune the current model from your marks into a new model file (the \
                 current one is kept), embed the index again, and ask the query again",
            )
            .clicked()
        {
            intents.push(Intent::RetrainWithMarks);
        }
        let label = ui.label("for");
        ui.add_enabled(
            !retraining,
            egui::DragValue::new(&mut state.marks.fine_tune_seconds)
                .range(5.0..=3600.0)
                .speed(1.0)
                .suffix(" s"),
        )
        .labelled_by(label.id);
    });
    if retraining {
        ui.weak(
            "Searches are answered from the current model and index until the retrained \
             ones are ready.",
        );
    }
}
