//! The report's charts, drawn with plotters into SVG text.
//!
//! Every time chart shares one x axis (simulated seconds, the whole run) and one left edge, so the
//! charts of a page line up: a crash in the timeline sits right above the fall it caused in the
//! offsets. Text is SVG `<text>` (plotters' font-free layout), so no system font is needed to
//! draw; widths are estimated, and every label that could collide (markers above a chart, labels
//! inside bands) is placed only where the estimate says it fits. Legends are drawn below the plot,
//! never over the data. Nothing here reads a clock or iterates a hash map: the same record draws
//! the same bytes.

use std::collections::BTreeMap;
use std::error::Error;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{NetChange, NodeChange, OpOutcome, Role, RunRecord};

pub(super) type DrawResult<T> = Result<T, Box<dyn Error>>;

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;

pub(super) const WIDTH_PX: u32 = 1100;
/// The plot's left edge: lane labels and y axis labels live left of it.
const LABEL_AREA_PX: u32 = 190;
const MARGIN_LEFT_PX: u32 = 8;
const MARGIN_RIGHT_PX: u32 = 28;
const CAPTION_PX: u32 = 26;
/// Rows of marker labels (anomalies, crashes, leader changes) above a time chart.
const MARKER_ROWS: u32 = 3;
const MARKER_ROW_PX: u32 = 14;
const X_AXIS_PX: u32 = 44;
const LEGEND_ROW_PX: u32 = 20;
const LANE_PX: u32 = 22;
/// At most this many partitions are drawn in the timeline and as offset charts.
pub(super) const PARTITIONS_DRAWN_MAX: usize = 12;
/// At most this many acknowledged records are drawn as dots per partition (evenly chosen).
const ACK_DOTS_MAX: usize = 3_000;

const TEXT: RGBColor = RGBColor(30, 30, 30);
const GRID: RGBColor = RGBColor(225, 225, 225);
const CRASH: RGBColor = RGBColor(214, 39, 40);
const PAUSE: RGBColor = RGBColor(150, 150, 150);
const NET: RGBColor = RGBColor(240, 180, 30);
const ANOMALY: RGBColor = RGBColor(170, 0, 120);
const LEADER: RGBColor = RGBColor(31, 90, 160);
const FOLLOWER: RGBColor = RGBColor(160, 195, 235);
const NO_ROLE: RGBColor = RGBColor(238, 238, 238);
const UP: RGBColor = RGBColor(215, 238, 215);
const OP_OK: RGBColor = RGBColor(70, 160, 70);
const OP_FAILED: RGBColor = RGBColor(214, 39, 40);
const OP_INDEFINITE: RGBColor = RGBColor(245, 170, 0);
const LEADER_CHANGE: RGBColor = RGBColor(110, 110, 110);
/// One colour per broker (red is kept for crashes, magenta for anomalies).
const BROKER_COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
];

/// A text style whose SVG `font-size` is `px` (plotters divides the size by 1.24).
fn font<'a>(px: f64) -> TextStyle<'a> {
    ("sans-serif", px * 1.24).into_font().color(&TEXT)
}

fn bold_font<'a>(px: f64) -> TextStyle<'a> {
    ("sans-serif", px * 1.24, FontStyle::Bold).into_font().color(&TEXT)
}

/// An estimate of a text's width in pixels (generous: sans-serif averages ~0.55 em).
pub(super) fn text_px(text: &str, px: f64) -> f64 {
    text.chars().count() as f64 * px * 0.6
}

fn anchored(style: TextStyle<'_>, h: HPos, v: VPos) -> TextStyle<'_> {
    style.pos(Pos::new(h, v))
}

pub(super) fn broker_color(view: &View, node: u32) -> RGBColor {
    let index = view.brokers.iter().position(|b| *b == node).unwrap_or(view.brokers.len());
    BROKER_COLORS[index % BROKER_COLORS.len()]
}

/// A time interval of one node (or of the network: `node` is then `None`).
#[derive(Clone, Debug)]
pub(super) struct Span {
    pub node: Option<u32>,
    pub start_s: f64,
    pub end_s: f64,
    pub label: String,
    /// For overlapping network cuts: which label row.
    pub row: u32,
}

/// A vertical marker across a time chart, labelled above it.
#[derive(Clone, Debug)]
pub(super) struct Marker {
    pub t_s: f64,
    pub label: String,
    pub color: RGBColor,
}

/// An anomaly as the charts show it: `A1`, `A2`... in the record's order.
#[derive(Clone, Debug)]
pub(super) struct AnomalyMark {
    pub label: String,
    pub t_s: Option<f64>,
    pub partition: Option<String>,
    pub offset: Option<i64>,
}

/// What the charts derive from a record once: intervals, the lanes' order, the markers.
pub(super) struct View {
    pub end_s: f64,
    pub brokers: Vec<u32>,
    /// Naturally sorted ("t0-2" before "t0-10"), at most [`PARTITIONS_DRAWN_MAX`].
    pub partitions: Vec<String>,
    pub partitions_omitted: usize,
    pub downs: Vec<Span>,
    pub pauses: Vec<Span>,
    pub cuts: Vec<Span>,
    pub anomalies: Vec<AnomalyMark>,
}

impl View {
    pub fn new(record: &RunRecord) -> View {
        let end_s = (record.end_ms / 1000.0).max(0.001);
        let mut brokers = record.header.brokers.clone();
        let seen = record
            .node_events
            .iter()
            .map(|e| e.node)
            .chain(record.partitions.values().flat_map(|p| p.replicas.keys().copied()));
        let mut extra: Vec<u32> = seen.filter(|n| !brokers.contains(n)).collect();
        extra.sort_unstable();
        extra.dedup();
        brokers.extend(extra);
        let mut partitions: Vec<String> = record.header.partitions.clone();
        for name in record.partitions.keys() {
            if !partitions.contains(name) {
                partitions.push(name.clone());
            }
        }
        partitions.sort_by_key(|name| natural_key(name));
        let partitions_omitted = partitions.len().saturating_sub(PARTITIONS_DRAWN_MAX);
        partitions.truncate(PARTITIONS_DRAWN_MAX);
        let (downs, pauses) = node_spans(record, end_s);
        let anomalies = record
            .anomalies
            .iter()
            .enumerate()
            .map(|(index, a)| AnomalyMark {
                label: format!("A{}", index + 1),
                t_s: a.t_ms.map(|t| t / 1000.0),
                partition: a.partition.clone(),
                offset: a.offset,
            })
            .collect();
        View {
            end_s,
            brokers,
            partitions,
            partitions_omitted,
            downs,
            pauses,
            cuts: net_spans(record, end_s),
            anomalies,
        }
    }

    /// The whole run.
    pub fn whole(&self) -> Window {
        Window { start_s: 0.0, end_s: self.end_s }
    }

    fn anomaly_markers(&self) -> Vec<Marker> {
        self.anomalies
            .iter()
            .filter_map(|a| a.t_s.map(|t_s| Marker { t_s, label: a.label.clone(), color: ANOMALY }))
            .collect()
    }

    fn down_markers(&self) -> Vec<Marker> {
        self.downs
            .iter()
            .filter_map(|span| {
                let node = span.node?;
                Some(Marker { t_s: span.start_s, label: format!("b{node} {}", span.label), color: CRASH })
            })
            .collect()
    }
}

/// A name's sort key in which digit runs compare as numbers.
pub(super) fn natural_key(name: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut digits = String::new();
    let mut text = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                key.push((u64::MAX, std::mem::take(&mut text)));
            }
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((digits.parse().unwrap_or(u64::MAX - 1), String::new()));
                digits.clear();
            }
            text.push(c);
        }
    }
    if !digits.is_empty() {
        key.push((digits.parse().unwrap_or(u64::MAX - 1), String::new()));
    }
    if !text.is_empty() {
        key.push((u64::MAX, text));
    }
    key
}

/// Down and paused intervals per node, from the node events (open ones end with the run).
fn node_spans(record: &RunRecord, end_s: f64) -> (Vec<Span>, Vec<Span>) {
    let mut downs = Vec::new();
    let mut pauses = Vec::new();
    let mut open_down: BTreeMap<u32, (f64, String)> = BTreeMap::new();
    let mut open_pause: BTreeMap<u32, f64> = BTreeMap::new();
    let span = |node: u32, start_s: f64, end_s: f64, label: String| Span {
        node: Some(node),
        start_s,
        end_s: end_s.max(start_s),
        label,
        row: 0,
    };
    for event in &record.node_events {
        let t_s = event.t_ms / 1000.0;
        let node = event.node;
        match &event.change {
            NodeChange::Down { why } => {
                if let Some(start) = open_pause.remove(&node) {
                    pauses.push(span(node, start, t_s, "paused".into()));
                }
                open_down.entry(node).or_insert((t_s, why.clone()));
            }
            NodeChange::Up => {
                if let Some((start, why)) = open_down.remove(&node) {
                    downs.push(span(node, start, t_s, why));
                }
            }
            NodeChange::Paused => {
                if !open_down.contains_key(&node) {
                    open_pause.entry(node).or_insert(t_s);
                }
            }
            NodeChange::Resumed => {
                if let Some(start) = open_pause.remove(&node) {
                    pauses.push(span(node, start, t_s, "paused".into()));
                }
            }
        }
    }
    for (node, (start, why)) in open_down {
        downs.push(span(node, start, end_s, why));
    }
    for (node, start) in open_pause {
        pauses.push(span(node, start, end_s, "paused".into()));
    }
    downs.sort_by(|a, b| a.start_s.total_cmp(&b.start_s).then(a.node.cmp(&b.node)));
    pauses.sort_by(|a, b| a.start_s.total_cmp(&b.start_s).then(a.node.cmp(&b.node)));
    (downs, pauses)
}

/// Network cut intervals: each cut lasts until the next heal (or the run's end).
fn net_spans(record: &RunRecord, end_s: f64) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut open: Vec<(f64, String)> = Vec::new();
    for event in &record.net_events {
        let t_s = event.t_ms / 1000.0;
        match &event.change {
            NetChange::Healed => {
                for (start, label) in open.drain(..) {
                    spans.push((start, t_s, label));
                }
            }
            change => open.push((t_s, change.label())),
        }
    }
    for (start, label) in open {
        spans.push((start, end_s, label));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Overlapping cuts take turns between two label rows.
    let mut row_ends = [f64::NEG_INFINITY; 2];
    spans
        .into_iter()
        .map(|(start_s, end_s, label)| {
            let row = if row_ends[0] <= start_s { 0 } else { 1 };
            row_ends[row] = end_s;
            Span { node: None, start_s, end_s: end_s.max(start_s), label, row: row as u32 }
        })
        .collect()
}

/// Seconds on the x axis, with as many decimals as the shown span needs.
fn seconds_label(span_s: f64) -> impl Fn(&f64) -> String {
    move |t: &f64| {
        if span_s <= 0.2 {
            format!("{t:.3}")
        } else if span_s <= 2.0 {
            format!("{t:.2}")
        } else if span_s <= 20.0 {
            format!("{t:.1}")
        } else {
            format!("{t:.0}")
        }
    }
}

/// A legend entry's key.
#[derive(Clone, Copy)]
pub(super) enum Key {
    Fill(RGBColor),
    Hatch,
    Line(RGBColor),
    Dashed(RGBColor),
    Dot(RGBColor),
    Ring(RGBColor),
    Cross(RGBColor),
    Marker(RGBColor),
}

const KEY_PX: i32 = 22;
const LEGEND_FONT_PX: f64 = 12.0;

/// Lays legend entries out in rows that fit the width: the entries' (row, x) positions.
fn legend_layout(entries: &[(Key, String)]) -> (Vec<(u32, i32)>, u32) {
    let right = (WIDTH_PX - MARGIN_RIGHT_PX) as i32;
    let left = (MARGIN_LEFT_PX + 12) as i32;
    let mut positions = Vec::new();
    let (mut row, mut x) = (0u32, left);
    for (_, text) in entries {
        let width = KEY_PX + 6 + text_px(text, LEGEND_FONT_PX) as i32 + 18;
        if x + width > right && x > left {
            row += 1;
            x = left;
        }
        positions.push((row, x));
        x += width;
    }
    let rows = if entries.is_empty() { 0 } else { row + 1 };
    (positions, rows)
}

fn legend_height(entries: &[(Key, String)]) -> u32 {
    let (_, rows) = legend_layout(entries);
    rows * LEGEND_ROW_PX + if rows > 0 { 8 } else { 0 }
}

fn draw_legend(area: &Area<'_>, entries: &[(Key, String)]) -> DrawResult<()> {
    let (positions, _) = legend_layout(entries);
    for ((key, text), (row, x)) in entries.iter().zip(positions) {
        let y = (row * LEGEND_ROW_PX) as i32 + 10;
        draw_key(area, *key, x, y)?;
        area.draw(&Text::new(
            text.clone(),
            (x + KEY_PX + 6, y),
            anchored(font(LEGEND_FONT_PX), HPos::Left, VPos::Center),
        ))?;
    }
    Ok(())
}

fn draw_key(area: &Area<'_>, key: Key, x: i32, y: i32) -> DrawResult<()> {
    let (x1, mid) = (x + KEY_PX, x + KEY_PX / 2);
    match key {
        Key::Fill(color) => {
            area.draw(&Rectangle::new([(x, y - 6), (x1, y + 6)], color.filled()))?;
        }
        Key::Hatch => {
            area.draw(&Rectangle::new([(x, y - 6), (x1, y + 6)], PAUSE.mix(0.45).filled()))?;
            hatch(area, (x, y - 6), (x1, y + 6))?;
        }
        Key::Line(color) => area.draw(&PathElement::new(vec![(x, y), (x1, y)], color.stroke_width(2)))?,
        Key::Dashed(color) => {
            area.draw(&DashedPathElement::new(vec![(x, y), (x1, y)], 5, 3, color.stroke_width(2)))?
        }
        Key::Dot(color) => area.draw(&Circle::new((mid, y), 3, color.filled()))?,
        Key::Ring(color) => area.draw(&Circle::new((mid, y), 4, color.stroke_width(1)))?,
        Key::Cross(color) => area.draw(&Cross::new((mid, y), 5, color.stroke_width(2)))?,
        Key::Marker(color) => {
            area.draw(&DashedPathElement::new(vec![(mid, y - 8), (mid, y + 8)], 3, 2, color.stroke_width(2)))?
        }
    }
    Ok(())
}

/// Diagonal hatching inside a pixel rectangle.
fn hatch(area: &Area<'_>, (left, top): (i32, i32), (right, bottom): (i32, i32)) -> DrawResult<()> {
    let height = bottom - top;
    if right - left < 2 || height < 2 {
        return Ok(());
    }
    let style = RGBColor(90, 90, 90).stroke_width(1);
    let mut x = left - height;
    while x < right {
        // From (x, bottom) up to (x + height, top), clipped to [left, right].
        let (mut x0, mut y0) = (x, bottom);
        let (mut x1, mut y1) = (x + height, top);
        if x0 < left {
            y0 -= left - x0;
            x0 = left;
        }
        if x1 > right {
            y1 += x1 - right;
            x1 = right;
        }
        if x1 > x0 {
            area.draw(&PathElement::new(vec![(x0, y0), (x1, y1)], style))?;
        }
        x += 6;
    }
    Ok(())
}

/// The layout every time chart shares: the canvas, split into the chart and the legend below.
struct Canvas {
    height_px: u32,
    chart_px: u32,
}

impl Canvas {
    /// A time chart: marker label rows between the title and the plot.
    fn new(plot_px: u32, legend: &[(Key, String)]) -> Canvas {
        Canvas::with_top(CAPTION_PX + MARKER_ROWS * MARKER_ROW_PX + 6, plot_px, legend)
    }

    fn with_top(top_px: u32, plot_px: u32, legend: &[(Key, String)]) -> Canvas {
        let chart_px = top_px + plot_px + X_AXIS_PX;
        Canvas { height_px: chart_px + legend_height(legend), chart_px }
    }
}

/// Builds a chart over `0..end_s` × `y_range` with the shared margins.
fn time_chart<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    window: Window,
    y_range: std::ops::Range<f64>,
) -> DrawResult<Chart<'a, 'b>> {
    draw_title(area, title)?;
    let chart = ChartBuilder::on(area)
        .margin_left(MARGIN_LEFT_PX)
        .margin_right(MARGIN_RIGHT_PX)
        .margin_top(CAPTION_PX + MARKER_ROWS * MARKER_ROW_PX + 6)
        .x_label_area_size(X_AXIS_PX)
        .y_label_area_size(LABEL_AREA_PX)
        .build_cartesian_2d(window.start_s..window.end_s, y_range)?;
    Ok(chart)
}

/// The chart's title, centred over the plot, above the marker label rows.
fn draw_title(area: &Area<'_>, title: &str) -> DrawResult<()> {
    let plot_left = (MARGIN_LEFT_PX + LABEL_AREA_PX) as i32;
    let plot_right = (WIDTH_PX - MARGIN_RIGHT_PX) as i32;
    area.draw(&Text::new(
        title.to_string(),
        ((plot_left + plot_right) / 2, 6),
        anchored(bold_font(15.0), HPos::Center, VPos::Top),
    ))?;
    Ok(())
}

/// Vertical dashed markers across the plot, labelled in rows above it where the labels fit.
fn draw_markers(chart: &Chart<'_, '_>, area: &Area<'_>, markers: &[Marker]) -> DrawResult<()> {
    let (y_min, y_max) = {
        let range = chart.y_range();
        (range.start, range.end)
    };
    let mut sorted: Vec<&Marker> = markers.iter().collect();
    sorted.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    let plot_top = chart.backend_coord(&(0.0, y_max)).1;
    let mut row_ends = [i32::MIN; MARKER_ROWS as usize];
    for marker in sorted {
        chart.plotting_area().draw(&DashedPathElement::new(
            vec![(marker.t_s, y_min), (marker.t_s, y_max)],
            4,
            3,
            marker.color.stroke_width(2),
        ))?;
        let x = chart.backend_coord(&(marker.t_s, y_min)).0;
        let width = text_px(&marker.label, 11.0) as i32;
        let start = x - width / 2;
        let Some(row) = row_ends.iter().position(|end| start > *end + 4) else {
            continue; // No room: the line stays, the label is in the tables.
        };
        row_ends[row] = start + width;
        let y = plot_top - 3 - row as i32 * MARKER_ROW_PX as i32;
        area.draw(&Text::new(
            marker.label.clone(),
            (x, y),
            anchored(font(11.0).color(&marker.color), HPos::Center, VPos::Bottom),
        ))?;
    }
    Ok(())
}

fn x_mesh(chart: &mut Chart<'_, '_>, window: Window, y_desc: &str, y_labels: usize) -> DrawResult<()> {
    let seconds = seconds_label(window.end_s - window.start_s);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_labels(12)
        .y_labels(y_labels)
        .x_label_formatter(&seconds)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("simulated time (s)")
        .y_desc(y_desc)
        .label_style(font(12.0))
        .axis_desc_style(font(12.0))
        .draw()?;
    Ok(())
}

/// Renders into an SVG string: `draw` gets the chart area (top) and the legend area (bottom).
fn render(
    height_px: u32,
    chart_px: u32,
    draw: impl FnOnce(&Area<'_>, &Area<'_>) -> DrawResult<()>,
) -> DrawResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, height_px)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(chart_px);
        draw(&top, &bottom)?;
        root.present()?;
    }
    Ok(svg)
}

// The timeline.

enum Lane {
    Network,
    Node(u32),
    Replica(String, u32),
}

/// One lane per broker for its state (up, down, paused), one lane per (partition, broker) for the
/// replica's role, and one lane on top for the network.
pub(super) fn timeline(record: &RunRecord, view: &View) -> DrawResult<String> {
    let mut lanes = vec![Lane::Network];
    lanes.extend(view.brokers.iter().map(|b| Lane::Node(*b)));
    for partition in &view.partitions {
        let replicas = record.partitions.get(partition).map(|p| &p.replicas);
        for broker in &view.brokers {
            if replicas.is_some_and(|r| r.contains_key(broker)) {
                lanes.push(Lane::Replica(partition.clone(), *broker));
            }
        }
    }
    let legend = vec![
        (Key::Fill(LEADER), "leader (e3 = leader epoch 3)".to_string()),
        (Key::Fill(FOLLOWER), "follower".to_string()),
        (Key::Fill(NO_ROLE), "no role (not serving)".to_string()),
        (Key::Fill(UP), "broker up".to_string()),
        (Key::Fill(CRASH), "broker down (crash, power loss, halt, shutdown)".to_string()),
        (Key::Hatch, "broker paused".to_string()),
        (Key::Fill(NET), "network cut (groups that cannot talk)".to_string()),
        (Key::Marker(ANOMALY), "anomaly A1, A2... (see the table)".to_string()),
    ];
    let n = lanes.len() as f64;
    let canvas = Canvas::new(lanes.len() as u32 * LANE_PX, &legend);
    render(canvas.height_px, canvas.chart_px, |area, legend_area| {
        let mut chart = time_chart(area, "Timeline: brokers, roles, faults", view.whole(), 0.0..n)?;
        x_mesh(&mut chart, view.whole(), "", 0)?;
        let lane_y = |index: usize| (n - index as f64 - 1.0, n - index as f64);
        for (index, lane) in lanes.iter().enumerate() {
            let (y0, y1) = lane_y(index);
            match lane {
                Lane::Network => draw_network_lane(&chart, area, view, y0, y1)?,
                Lane::Node(node) => draw_node_lane(&chart, area, view, *node, y0, y1)?,
                Lane::Replica(partition, node) => {
                    draw_replica_lane(&chart, area, view, record, partition, *node, y0, y1)?
                }
            }
        }
        // Network cuts shade every lane, so their moment is seen against every role.
        for cut in &view.cuts {
            chart
                .plotting_area()
                .draw(&Rectangle::new([(cut.start_s, 0.0), (cut.end_s, n - 1.0)], NET.mix(0.16).filled()))?;
        }
        draw_lane_labels(&chart, area, &lanes, n)?;
        draw_markers(&chart, area, &view.anomaly_markers())?;
        draw_legend(legend_area, &legend)
    })
}

fn draw_lane_labels(chart: &Chart<'_, '_>, area: &Area<'_>, lanes: &[Lane], n: f64) -> DrawResult<()> {
    let mut previous_group: Option<String> = None;
    for (index, lane) in lanes.iter().enumerate() {
        let y_mid = n - index as f64 - 0.5;
        let (x, y) = chart.backend_coord(&(0.0, y_mid));
        let (text, group, bold) = match lane {
            Lane::Network => ("network".to_string(), "network".to_string(), true),
            Lane::Node(node) => (format!("broker {node}"), "nodes".to_string(), true),
            Lane::Replica(partition, node) => {
                (format!("{partition} on broker {node}"), partition.clone(), false)
            }
        };
        let style = if bold { bold_font(12.0) } else { font(12.0) };
        area.draw(&Text::new(text, (x - 8, y), anchored(style, HPos::Right, VPos::Center)))?;
        if previous_group.as_ref().is_some_and(|g| *g != group) {
            let y_top = n - index as f64;
            chart.plotting_area().draw(&PathElement::new(
                vec![(0.0, y_top), (chart.x_range().end, y_top)],
                RGBColor(120, 120, 120).stroke_width(1),
            ))?;
        }
        previous_group = Some(group);
    }
    Ok(())
}

const BAND_INSET: f64 = 0.14;

fn draw_network_lane(
    chart: &Chart<'_, '_>,
    area: &Area<'_>,
    view: &View,
    y0: f64,
    y1: f64,
) -> DrawResult<()> {
    for (index, cut) in view.cuts.iter().enumerate() {
        // Two rows of cuts share the lane when they overlap.
        let half = (y1 - y0) / 2.0;
        let (low, high) = if cut.row == 0 { (y0 + half, y1) } else { (y0, y0 + half) };
        let (low, high) = (low + BAND_INSET / 2.0, high - BAND_INSET / 2.0);
        chart.plotting_area().draw(&Rectangle::new([(cut.start_s, low), (cut.end_s, high)], NET.filled()))?;
        let width_px = text_px(&cut.label, 10.0) + 6.0;
        if width_px <= pixel_width(chart, cut.start_s, cut.end_s) {
            band_label(chart, &cut.label, cut.start_s, cut.end_s, (low + high) / 2.0, TEXT, 10.0)?;
            continue;
        }
        // Too short a cut for its groups: write them after its start, up to the next cut.
        let next_s = view.cuts.get(index + 1).map_or(view.end_s, |next| next.start_s);
        if width_px <= pixel_width(chart, cut.start_s, next_s) {
            let (x, y) = chart.backend_coord(&(cut.start_s, (low + high) / 2.0));
            area.draw(&Text::new(
                cut.label.clone(),
                (x + 3, y),
                anchored(font(10.0), HPos::Left, VPos::Center),
            ))?;
        }
    }
    Ok(())
}

fn draw_node_lane(
    chart: &Chart<'_, '_>,
    area: &Area<'_>,
    view: &View,
    node: u32,
    y0: f64,
    y1: f64,
) -> DrawResult<()> {
    let (low, high) = (y0 + BAND_INSET, y1 - BAND_INSET);
    chart.plotting_area().draw(&Rectangle::new([(0.0, low), (view.end_s, high)], UP.filled()))?;
    for down in view.downs.iter().filter(|s| s.node == Some(node)) {
        chart
            .plotting_area()
            .draw(&Rectangle::new([(down.start_s, low), (down.end_s, high)], CRASH.filled()))?;
        band_label(chart, &down.label, down.start_s, down.end_s, (low + high) / 2.0, WHITE, 11.0)?;
        // The moment of the crash, even when the outage is too short to see as a band.
        chart
            .plotting_area()
            .draw(&PathElement::new(vec![(down.start_s, y0), (down.start_s, y1)], CRASH.stroke_width(2)))?;
    }
    for pause in view.pauses.iter().filter(|s| s.node == Some(node)) {
        draw_pause(chart, area, pause, low, high)?;
        band_label(chart, "paused", pause.start_s, pause.end_s, (low + high) / 2.0, TEXT, 11.0)?;
    }
    Ok(())
}

fn draw_pause(chart: &Chart<'_, '_>, area: &Area<'_>, pause: &Span, low: f64, high: f64) -> DrawResult<()> {
    chart
        .plotting_area()
        .draw(&Rectangle::new([(pause.start_s, low), (pause.end_s, high)], PAUSE.mix(0.45).filled()))?;
    let top_left = chart.backend_coord(&(pause.start_s, high));
    let bottom_right = chart.backend_coord(&(pause.end_s, low));
    hatch(area, top_left, bottom_right)
}

#[allow(clippy::too_many_arguments)]
fn draw_replica_lane(
    chart: &Chart<'_, '_>,
    area: &Area<'_>,
    view: &View,
    record: &RunRecord,
    partition: &str,
    node: u32,
    y0: f64,
    y1: f64,
) -> DrawResult<()> {
    let (low, high) = (y0 + BAND_INSET, y1 - BAND_INSET);
    let Some(replica) = record.partitions.get(partition).and_then(|p| p.replicas.get(&node)) else {
        return Ok(());
    };
    for (index, change) in replica.roles.iter().enumerate() {
        let start_s = change.t_ms / 1000.0;
        let end_s = replica.roles.get(index + 1).map_or(view.end_s, |next| next.t_ms / 1000.0);
        let (fill, text_color, long, short) = match change.role {
            Role::Leader => (
                LEADER,
                WHITE,
                format!("leader e{}", change.leader_epoch),
                format!("L e{}", change.leader_epoch),
            ),
            Role::Follower => (
                FOLLOWER,
                TEXT,
                format!("follower e{}", change.leader_epoch),
                format!("F e{}", change.leader_epoch),
            ),
            Role::None => (NO_ROLE, TEXT, String::new(), String::new()),
        };
        chart.plotting_area().draw(&Rectangle::new([(start_s, low), (end_s, high)], fill.filled()))?;
        let width = pixel_width(chart, start_s, end_s);
        let label = if text_px(&long, 11.0) + 6.0 <= width { long } else { short };
        band_label(chart, &label, start_s, end_s, (low + high) / 2.0, text_color, 11.0)?;
        // A thin white edge between two bands of the same colour (a new epoch, same role).
        chart
            .plotting_area()
            .draw(&PathElement::new(vec![(start_s, low), (start_s, high)], WHITE.stroke_width(1)))?;
    }
    for down in view.downs.iter().filter(|s| s.node == Some(node)) {
        chart
            .plotting_area()
            .draw(&Rectangle::new([(down.start_s, y0), (down.end_s, y1)], CRASH.mix(0.75).filled()))?;
        chart
            .plotting_area()
            .draw(&PathElement::new(vec![(down.start_s, y0), (down.start_s, y1)], CRASH.stroke_width(2)))?;
    }
    for pause in view.pauses.iter().filter(|s| s.node == Some(node)) {
        draw_pause(chart, area, pause, low, high)?;
    }
    Ok(())
}

fn pixel_width(chart: &Chart<'_, '_>, start_s: f64, end_s: f64) -> f64 {
    let y = chart.y_range().start;
    (chart.backend_coord(&(end_s, y)).0 - chart.backend_coord(&(start_s, y)).0) as f64
}

/// A label centred in a band, drawn only if it fits.
fn band_label(
    chart: &Chart<'_, '_>,
    text: &str,
    start_s: f64,
    end_s: f64,
    y: f64,
    color: RGBColor,
    px: f64,
) -> DrawResult<()> {
    if text.is_empty() || text_px(text, px) + 6.0 > pixel_width(chart, start_s, end_s) {
        return Ok(());
    }
    chart.plotting_area().draw(&Text::new(
        text.to_string(),
        ((start_s + end_s) / 2.0, y),
        anchored(font(px).color(&color), HPos::Center, VPos::Center),
    ))?;
    Ok(())
}

// Offsets.

/// The time span a chart shows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Window {
    pub start_s: f64,
    pub end_s: f64,
}

impl Window {
    fn contains(&self, t_s: f64) -> bool {
        (self.start_s..=self.end_s).contains(&t_s)
    }
}

/// The close-up of a partition's loss: from the last broker going down before its first timed
/// anomaly (and the leader changes in between) to its last anomaly and that broker's return,
/// padded. `None` when the partition has no timed anomaly, or when the close-up would show most
/// of the run anyway.
pub(super) fn story_window(record: &RunRecord, view: &View, partition: &str) -> Option<Window> {
    let times: Vec<f64> = view
        .anomalies
        .iter()
        .filter(|a| a.partition.as_deref() == Some(partition))
        .filter_map(|a| a.t_s)
        .collect();
    let first = times.iter().copied().reduce(f64::min)?;
    let mut start = first;
    let mut end = times.iter().copied().fold(first, f64::max);
    if let Some(down) = view.downs.iter().rfind(|d| d.start_s <= first) {
        start = start.min(down.start_s);
        if down.end_s < view.end_s {
            end = end.max(down.end_s);
        }
    }
    for (t_s, ..) in leader_changes(record, partition) {
        if t_s >= start && t_s <= first {
            start = start.min(t_s);
        }
    }
    let pad = ((end - start) * 0.15).max(0.01);
    let window = Window { start_s: (start - pad).max(0.0), end_s: (end + pad).min(view.end_s) };
    if window.end_s - window.start_s > 0.6 * view.end_s {
        return None;
    }
    Some(window)
}

/// A partition's offsets: per broker, its log end offset (solid) and high watermark (dashed) as
/// step lines, broken while the broker is down; acknowledged records as dots; truncations and
/// anomalies labelled. `window`: the whole run, or a close-up.
pub(super) fn offsets(
    record: &RunRecord,
    view: &View,
    partition: &str,
    window: Window,
) -> DrawResult<String> {
    let replicas = record.partitions.get(partition).map(|p| p.replicas.clone()).unwrap_or_default();
    let zoomed = window != view.whole();

    // What is visible, clipped to the window.
    let mut lines: Vec<StepLine> = Vec::new();
    let mut truncations: Vec<(u32, f64, i64, i64)> = Vec::new();
    for (node, replica) in &replicas {
        let color = broker_color(view, *node);
        let downs: Vec<&Span> = view.downs.iter().filter(|s| s.node == Some(*node)).collect();
        for segment in step_segments(&replica.offsets.shown(), &downs, view.end_s) {
            let leo: Vec<(f64, f64)> = segment.iter().map(|p| (p.0, p.1)).collect();
            let hw: Vec<(f64, f64)> = segment.iter().map(|p| (p.0, p.2)).collect();
            lines.extend(clip(&leo, window).into_iter().map(|points| StepLine {
                color,
                dashed: false,
                points,
            }));
            lines.extend(clip(&hw, window).into_iter().map(|points| StepLine {
                color,
                dashed: true,
                points,
            }));
        }
        let items = &replica.offsets.items;
        for (index, sample) in items.iter().enumerate() {
            if index > 0 && replica.offsets.marked[index] && window.contains(sample.t_ms / 1000.0) {
                let before = items[index - 1].log_end_offset;
                truncations.push((*node, sample.t_ms / 1000.0, before, sample.log_end_offset));
            }
        }
    }
    let acked: Vec<(f64, i64, bool)> =
        acked_dots(record, partition).into_iter().filter(|(t_s, ..)| window.contains(*t_s)).collect();
    let marks: Vec<&AnomalyMark> = view
        .anomalies
        .iter()
        .filter(|a| a.partition.as_deref() == Some(partition) && a.offset.is_some())
        .filter(|a| a.t_s.is_none_or(|t_s| window.contains(t_s)))
        .collect();

    let mut values: Vec<f64> = lines.iter().flat_map(|line| line.points.iter().map(|p| p.1)).collect();
    values.extend(acked.iter().map(|(_, offset, _)| slot(*offset)));
    values.extend(marks.iter().filter_map(|m| m.offset).map(slot));
    let y_max = values.iter().copied().fold(1.0, f64::max);
    let y_min = if zoomed { values.iter().copied().fold(y_max, f64::min) } else { 0.0 };
    let pad = ((y_max - y_min) * 0.08).max(1.0);
    let y_range = if zoomed { (y_min - pad).max(0.0)..y_max + pad } else { 0.0..y_max + pad };

    let mut legend = Vec::new();
    for node in replicas.keys() {
        let color = broker_color(view, *node);
        legend.push((Key::Line(color), format!("broker {node}: log end offset")));
        legend.push((Key::Dashed(color), format!("broker {node}: high watermark")));
    }
    if acked.iter().any(|(_, _, all)| *all) {
        legend.push((Key::Dot(TEXT), "acknowledged record, acks=all".to_string()));
    }
    if acked.iter().any(|(_, _, all)| !*all) {
        legend.push((Key::Ring(TEXT), "acknowledged record, acks=1 or 0".to_string()));
    }
    legend.push((Key::Marker(CRASH), "broker down".to_string()));
    legend.push((Key::Marker(LEADER_CHANGE), "new leader (epoch)".to_string()));
    legend.push((Key::Cross(ANOMALY), "anomaly at its offset (A1, A2...)".to_string()));

    let canvas = Canvas::new(if zoomed { 340 } else { 300 }, &legend);
    let title = if zoomed {
        format!(
            "Partition {partition}, close-up {:.3}–{:.3} s: how the records were lost",
            window.start_s, window.end_s
        )
    } else {
        format!("Partition {partition}: log end offsets and high watermarks")
    };
    render(canvas.height_px, canvas.chart_px, |area, legend_area| {
        let mut chart = time_chart(area, &title, window, y_range)?;
        x_mesh(&mut chart, window, "offset", 8)?;
        for line in &lines {
            let style = line.color.stroke_width(2);
            if line.dashed {
                chart.plotting_area().draw(&DashedPathElement::new(line.points.clone(), 6, 4, style))?;
            } else {
                chart.plotting_area().draw(&PathElement::new(line.points.clone(), style))?;
            }
        }
        let dot_px = if zoomed { 4 } else { 3 };
        for (t_s, offset, all) in &acked {
            let point = (*t_s, slot(*offset));
            if *all {
                chart.plotting_area().draw(&Circle::new(point, dot_px - 1, TEXT.filled()))?;
            } else {
                chart.plotting_area().draw(&Circle::new(point, dot_px, TEXT.stroke_width(1)))?;
            }
        }
        let mut labels = Placer::new(&chart);
        for mark in &marks {
            let Some(offset) = mark.offset else { continue };
            let y = slot(offset);
            let text = format!("{}: offset {offset}", mark.label);
            match mark.t_s {
                Some(t_s) => {
                    chart.plotting_area().draw(&Cross::new((t_s, y), 6, ANOMALY.stroke_width(3)))?;
                    labels.draw(area, chart.backend_coord(&(t_s, y)), &text, ANOMALY)?;
                }
                None => {
                    // No time known: a line at the offset, labelled near the right edge.
                    chart.plotting_area().draw(&DashedPathElement::new(
                        vec![(window.start_s, y), (window.end_s, y)],
                        4,
                        3,
                        ANOMALY.stroke_width(1),
                    ))?;
                    let (x, py) = chart.backend_coord(&(window.end_s, y));
                    let anchor = (x - text_px(&text, 11.0) as i32 - 20, py);
                    labels.draw(area, anchor, &text, ANOMALY)?;
                }
            }
        }
        // A few truncations are worth a sentence each; many would only hide the lines.
        if truncations.len() <= 6 {
            for (node, t_s, before, after) in &truncations {
                let text = format!("b{node} truncates {before} → {after}");
                labels.draw(area, chart.backend_coord(&(*t_s, *after as f64)), &text, TEXT)?;
            }
        }
        let mut markers = view.down_markers();
        markers.extend(leader_markers(record, partition));
        markers.extend(view.anomaly_markers());
        markers.retain(|m| window.contains(m.t_s));
        draw_markers(&chart, area, &markers)?;
        draw_legend(legend_area, &legend)
    })
}

/// A visible piece of a log end offset (solid) or high watermark (dashed) line.
struct StepLine {
    color: RGBColor,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// Where a record at `offset` is drawn: mid-way between `offset` and `offset + 1`, so that a
/// broker holds it exactly while that broker's log end offset line is above it.
fn slot(offset: i64) -> f64 {
    offset as f64 + 0.5
}

/// Places text labels near their points without overlapping each other or leaving the plot.
struct Placer {
    placed: Vec<(i32, i32, i32, i32)>,
    bounds: (i32, i32, i32, i32),
}

impl Placer {
    fn new(chart: &Chart<'_, '_>) -> Placer {
        let (x, y) = (chart.x_range(), chart.y_range());
        let (left, top) = chart.backend_coord(&(x.start, y.end));
        let (right, bottom) = chart.backend_coord(&(x.end, y.start));
        Placer { placed: Vec::new(), bounds: (left, top, right, bottom) }
    }

    /// Draws `text` beside `point` (right, then below, above, further, then left), or nowhere
    /// if every spot is taken: the tables list everything anyway.
    fn draw(&mut self, area: &Area<'_>, point: (i32, i32), text: &str, color: RGBColor) -> DrawResult<()> {
        let (width, height) = (text_px(text, 11.0) as i32, 13);
        let right = [(9, 2), (9, -15), (9, 16), (9, -29), (9, 30), (9, -43), (9, 44)];
        let left = right.map(|(_, dy)| (-9 - width, dy));
        for (dx, dy) in right.into_iter().chain(left) {
            let (x, y) = (point.0 + dx, point.1 + dy);
            let spot = (x, y, x + width, y + height);
            let inside = spot.0 >= self.bounds.0
                && spot.2 <= self.bounds.2
                && spot.1 >= self.bounds.1
                && spot.3 <= self.bounds.3;
            let free =
                self.placed.iter().all(|p| spot.2 < p.0 || spot.0 > p.2 || spot.3 < p.1 || spot.1 > p.3);
            if inside && free {
                self.placed.push(spot);
                // A light ground keeps the label legible over the lines it crosses.
                area.draw(&Rectangle::new(
                    [(x - 1, y - 1), (x + width + 1, y + height)],
                    WHITE.mix(0.75).filled(),
                ))?;
                area.draw(&Text::new(
                    text.to_string(),
                    (x, y),
                    anchored(font(11.0).color(&color), HPos::Left, VPos::Top),
                ))?;
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Clips a polyline whose x never decreases to the window: the visible pieces.
fn clip(points: &[(f64, f64)], window: Window) -> Vec<Vec<(f64, f64)>> {
    let mut pieces = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.0 < window.start_s || a.0 > window.end_s {
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            continue;
        }
        let at = |x: f64| if b.0 == a.0 { a.1 } else { a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0) };
        let from = if a.0 < window.start_s { (window.start_s, at(window.start_s)) } else { a };
        let to = if b.0 > window.end_s { (window.end_s, at(window.end_s)) } else { b };
        if current.last() != Some(&from) {
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            current.push(from);
        }
        current.push(to);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// The acknowledged records of a partition, as (completion time in s, offset, acks=all).
fn acked_dots(record: &RunRecord, partition: &str) -> Vec<(f64, i64, bool)> {
    let mut dots = Vec::new();
    for op in record.ops.listed.shown() {
        if op.kind != "send" || op.outcome != OpOutcome::Ok || op.partition != partition {
            continue;
        }
        let all = op.acks.as_deref().is_none_or(|acks| acks == "all" || acks == "-1");
        dots.extend(op.offsets.iter().map(|offset| (op.t_complete_ms / 1000.0, *offset, all)));
    }
    if dots.len() > ACK_DOTS_MAX {
        let step = dots.len().div_ceil(ACK_DOTS_MAX);
        dots = dots.into_iter().step_by(step).collect();
    }
    dots
}

/// When a partition got a new leader: (time s, node, leader epoch), in time order.
fn leader_changes(record: &RunRecord, partition: &str) -> Vec<(f64, u32, i32)> {
    let Some(replicas) = record.partitions.get(partition) else { return Vec::new() };
    let mut changes: Vec<(f64, u32, i32)> = replicas
        .replicas
        .iter()
        .flat_map(|(node, replica)| {
            replica
                .roles
                .iter()
                .filter(|c| c.role == Role::Leader)
                .map(|c| (c.t_ms / 1000.0, *node, c.leader_epoch))
        })
        .collect();
    changes.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    changes
}

/// The moments a partition got a new leader, after the first: "b2 leads e4".
fn leader_markers(record: &RunRecord, partition: &str) -> Vec<Marker> {
    leader_changes(record, partition)
        .into_iter()
        .filter(|(t_s, ..)| *t_s > 0.0)
        .map(|(t_s, node, epoch)| Marker {
            t_s,
            label: format!("b{node} leads e{epoch}"),
            color: LEADER_CHANGE,
        })
        .collect()
}

/// Step lines as (time s, log end offset, high watermark) points, split at the broker's downs.
/// After a restart the line resumes at the last recorded value: the record keeps only changes,
/// so a restart that recovered the same offsets records nothing new.
fn step_segments(samples: &[super::OffsetSample], downs: &[&Span], end_s: f64) -> Vec<Vec<(f64, f64, f64)>> {
    let mut segments = Vec::new();
    let mut current: Vec<(f64, f64, f64)> = Vec::new();
    let mut last: Option<(f64, f64)> = None;
    let mut downs = downs.iter().peekable();
    let mut close =
        |current: &mut Vec<(f64, f64, f64)>, last: &mut Option<(f64, f64)>, down: &Span, now_s: f64| {
            if let Some((leo, hw)) = *last {
                current.push((down.start_s, leo, hw));
            }
            if !current.is_empty() {
                segments.push(std::mem::take(current));
            }
            match *last {
                Some((leo, hw)) if down.end_s <= now_s => current.push((down.end_s, leo, hw)),
                _ => *last = None,
            }
        };
    for sample in samples {
        let t_s = sample.t_ms / 1000.0;
        while let Some(down) = downs.next_if(|d| d.start_s <= t_s) {
            close(&mut current, &mut last, down, t_s);
        }
        let (leo, hw) = (sample.log_end_offset as f64, sample.high_watermark as f64);
        if let Some((previous_leo, previous_hw)) = last {
            current.push((t_s, previous_leo, previous_hw));
        }
        current.push((t_s, leo, hw));
        last = Some((leo, hw));
    }
    for down in downs.by_ref() {
        if down.start_s >= end_s {
            break;
        }
        close(&mut current, &mut last, down, end_s);
    }
    if let Some((leo, hw)) = last {
        current.push((end_s, leo, hw));
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

// Client operations.

/// Client operations completed per time bucket, stacked by outcome.
pub(super) fn operations(record: &RunRecord, view: &View) -> DrawResult<String> {
    let bucket_ms = bucket_width_ms(record.end_ms);
    let mut buckets: BTreeMap<u64, super::OutcomeCounts> = BTreeMap::new();
    for per_kind in record.ops.counts.values() {
        for (fine, counts) in per_kind {
            let bucket = fine * super::OPS_BUCKET_MS / bucket_ms;
            let total = buckets.entry(bucket).or_default();
            total.ok += counts.ok;
            total.failed += counts.failed;
            total.indefinite += counts.indefinite;
        }
    }
    let y_max = buckets.values().map(|c| c.total()).max().unwrap_or(1).max(1) as f64;
    let legend = vec![
        (Key::Fill(OP_OK), "ok (it happened)".to_string()),
        (Key::Fill(OP_FAILED), "failed (it definitely did not happen)".to_string()),
        (Key::Fill(OP_INDEFINITE), "indefinite (unknown: a timeout)".to_string()),
        (Key::Marker(CRASH), "broker down".to_string()),
        (Key::Marker(ANOMALY), "anomaly".to_string()),
    ];
    let canvas = Canvas::new(220, &legend);
    let title = format!("Client operations completed per {} ms, by outcome", bucket_ms);
    render(canvas.height_px, canvas.chart_px, |area, legend_area| {
        let mut chart = time_chart(area, &title, view.whole(), 0.0..y_max * 1.1)?;
        x_mesh(&mut chart, view.whole(), "operations", 6)?;
        for (bucket, counts) in &buckets {
            let start_s = (bucket * bucket_ms) as f64 / 1000.0;
            let end_s = ((bucket + 1) * bucket_ms) as f64 / 1000.0;
            let mut base = 0.0;
            for (count, color) in
                [(counts.ok, OP_OK), (counts.failed, OP_FAILED), (counts.indefinite, OP_INDEFINITE)]
            {
                if count == 0 {
                    continue;
                }
                let top = base + count as f64;
                let mut bar = Rectangle::new([(start_s, base), (end_s, top)], color.filled());
                bar.set_margin(0, 0, 1, 1);
                chart.plotting_area().draw(&bar)?;
                base = top;
            }
        }
        let mut markers = view.down_markers();
        markers.extend(view.anomaly_markers());
        draw_markers(&chart, area, &markers)?;
        draw_legend(legend_area, &legend)
    })
}

/// A round bucket width (10, 20, 50, 100, 200, 500 ms...) giving at most about 40 bars.
fn bucket_width_ms(end_ms: f64) -> u64 {
    let wanted = end_ms / 40.0;
    let mut scale = super::OPS_BUCKET_MS;
    // Bounded: the scale grows tenfold per round and stops before it could overflow.
    while scale < u64::MAX / 100 {
        for multiple in [1, 2, 5] {
            if (scale * multiple) as f64 >= wanted {
                return scale * multiple;
            }
        }
        scale *= 10;
    }
    scale
}

// Horizontal bars (the swarm page).

/// One bar: its label, its value, and the text written after it.
pub(super) struct Bar {
    pub label: String,
    pub value: f64,
    pub note: String,
}

/// Horizontal bars, one per row, with an optional dashed reference line.
pub(super) fn bars(
    title: &str,
    rows: &[Bar],
    x_desc: &str,
    reference: Option<(f64, String)>,
) -> DrawResult<String> {
    let x_max =
        rows.iter().map(|r| r.value).fold(reference.as_ref().map_or(0.0, |r| r.0), f64::max).max(1.0) * 1.25;
    let n = rows.len().max(1) as f64;
    let mut legend = vec![(Key::Fill(LEADER), x_desc.to_string())];
    if let Some((_, text)) = &reference {
        legend.push((Key::Marker(ANOMALY), text.clone()));
    }
    let top_px = CAPTION_PX + 10;
    let canvas = Canvas::with_top(top_px, rows.len().max(1) as u32 * LANE_PX, &legend);
    render(canvas.height_px, canvas.chart_px, |area, legend_area| {
        draw_title(area, title)?;
        let mut chart = ChartBuilder::on(area)
            .margin_left(MARGIN_LEFT_PX)
            .margin_right(MARGIN_RIGHT_PX)
            .margin_top(top_px)
            .x_label_area_size(X_AXIS_PX)
            .y_label_area_size(LABEL_AREA_PX)
            .build_cartesian_2d(0.0..x_max, 0.0..n)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .y_labels(0)
            .x_labels(8)
            .x_label_formatter(&|x| format!("{x:.3}").trim_end_matches('0').trim_end_matches('.').to_string())
            .x_desc(x_desc)
            .label_style(font(12.0))
            .axis_desc_style(font(12.0))
            .draw()?;
        if let Some((value, _)) = &reference {
            chart.plotting_area().draw(&DashedPathElement::new(
                vec![(*value, 0.0), (*value, n)],
                4,
                3,
                ANOMALY.stroke_width(2),
            ))?;
        }
        for (index, row) in rows.iter().enumerate() {
            let (y0, y1) = (n - index as f64 - 1.0 + BAND_INSET, n - index as f64 - BAND_INSET);
            chart.plotting_area().draw(&Rectangle::new([(0.0, y0), (row.value, y1)], LEADER.filled()))?;
            let (x, y) = chart.backend_coord(&(row.value, (y0 + y1) / 2.0));
            // A white ground keeps the note legible where it crosses the reference line.
            let width = text_px(&row.note, 11.0) as i32;
            area.draw(&Rectangle::new([(x + 4, y - 7), (x + 8 + width, y + 7)], WHITE.filled()))?;
            area.draw(&Text::new(
                row.note.clone(),
                (x + 6, y),
                anchored(font(11.0), HPos::Left, VPos::Center),
            ))?;
            let (left, _) = chart.backend_coord(&(0.0, 0.0));
            area.draw(&Text::new(
                row.label.clone(),
                (left - 8, y),
                anchored(font(12.0), HPos::Right, VPos::Center),
            ))?;
        }
        draw_legend(legend_area, &legend)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::OffsetSample;

    fn span(start_s: f64, end_s: f64) -> Span {
        Span { node: Some(1), start_s, end_s, label: "crash".into(), row: 0 }
    }

    fn sample(t_ms: f64, log_end_offset: i64) -> OffsetSample {
        OffsetSample { t_ms, log_end_offset, high_watermark: 0 }
    }

    #[test]
    fn step_lines_break_at_a_crash_and_resume_at_the_restart() {
        let samples = [sample(0.0, 1), sample(1000.0, 3), sample(3000.0, 2)];
        let down = span(1.5, 2.5);
        let segments = step_segments(&samples, &[&down], 4.0);
        let points: Vec<Vec<(f64, f64)>> =
            segments.iter().map(|s| s.iter().map(|p| (p.0, p.1)).collect()).collect();
        assert_eq!(
            points,
            [
                vec![(0.0, 1.0), (1.0, 1.0), (1.0, 3.0), (1.5, 3.0)],
                // Resumed at the restart with the last value, then the truncation at 3 s.
                vec![(2.5, 3.0), (3.0, 3.0), (3.0, 2.0), (4.0, 2.0)],
            ]
        );
    }

    #[test]
    fn a_broker_still_down_at_the_end_draws_nothing_after_its_crash() {
        let samples = [sample(0.0, 1)];
        let down = span(1.0, 4.0);
        let segments = step_segments(&samples, &[&down], 4.0);
        assert_eq!(segments[0], [(0.0, 1.0, 0.0), (1.0, 1.0, 0.0)]);
        assert!(segments.iter().skip(1).all(|s| s.iter().all(|p| p.0 == 4.0)), "{segments:?}");
    }

    #[test]
    fn clipping_keeps_the_visible_pieces() {
        let line = [(0.0, 0.0), (2.0, 0.0), (2.0, 4.0), (6.0, 4.0)];
        let pieces = clip(&line, Window { start_s: 1.0, end_s: 3.0 });
        assert_eq!(pieces, [vec![(1.0, 0.0), (2.0, 0.0), (2.0, 4.0), (3.0, 4.0)]]);
        assert!(clip(&line, Window { start_s: 7.0, end_s: 8.0 }).is_empty());
    }

    #[test]
    fn names_sort_with_their_numbers() {
        let mut names = vec!["t0-10", "t0-2", "t1-0", "t0-1", "a"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, ["a", "t0-1", "t0-2", "t0-10", "t1-0"]);
    }

    #[test]
    fn buckets_are_round_and_about_forty_per_run() {
        assert_eq!(bucket_width_ms(1_600.0), 50);
        assert_eq!(bucket_width_ms(100.0), 10);
        assert_eq!(bucket_width_ms(40_000.0), 1_000);
        assert_eq!(bucket_width_ms(0.0), 10);
    }
}
