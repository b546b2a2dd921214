//! Request planning: which read requests fetch a poll group's points. Pure, so it is
//! table-tested; the config plans every group once when it is validated, and the poller sends
//! the planned requests.

use super::config::{Point, Table};

/// One read request: a contiguous block of one table covering some points of a poll group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub table: Table,
    /// 0-based protocol address of the first register (or bit).
    pub start: u16,
    pub count: u16,
    /// Indexes into the poll group's points, in address order.
    pub points: Vec<usize>,
}

/// Merges points into as few requests as possible: points of one table join the current
/// request while the unused registers between them number at most `max_gap` and the request
/// stays within `max_count` (and the protocol's limit for the table). Points that share
/// registers (bits of one register) share a request. Pure, so it is table-tested.
pub fn plan_requests(points: &[Point], max_gap: u16, max_count: u16) -> Vec<ReadRequest> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].table, points[i].address));
    let mut requests: Vec<ReadRequest> = Vec::new();
    // End (exclusive) of the current request, as u32 so the last register does not wrap.
    let mut end = 0u32;
    for i in order {
        let p = &points[i];
        let span = p.span();
        let limit = u32::from(max_count.min(p.table.max_per_request()).max(1));
        if let Some(current) = requests.last_mut() {
            let start = u32::from(current.start);
            let new_end = end.max(span.end);
            if current.table == p.table
                && span.start <= end + u32::from(max_gap)
                && new_end - start <= limit
            {
                current.count = (new_end - start) as u16;
                current.points.push(i);
                end = new_end;
                continue;
            }
        }
        requests.push(ReadRequest {
            table: p.table,
            start: p.address,
            count: (span.end - span.start) as u16,
            points: vec![i],
        });
        end = span.end;
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::modbus::decode::DataType;
    use crate::ingest::modbus::decode::{Order, Scaling};

    fn point(table: Table, address: u16, data_type: DataType) -> Point {
        Point {
            metric: format!("{table}_{address}"),
            unit: None,
            table,
            address,
            data_type,
            order: Order::Abcd,
            scaling: Scaling::IDENTITY,
            group: None,
            labels: vec![],
        }
    }

    /// (table, start, count, point indexes) per request.
    type Planned = (Table, u16, u16, Vec<usize>);
    /// (name, points, max_gap, max_count, expected plan).
    type Case = (&'static str, Vec<Point>, u16, u16, Vec<Planned>);

    fn plan(points: &[Point], gap: u16, count: u16) -> Vec<Planned> {
        plan_requests(points, gap, count)
            .into_iter()
            .map(|r| (r.table, r.start, r.count, r.points))
            .collect()
    }

    #[test]
    fn merge_plans() {
        use DataType::*;
        use Table::*;
        let cases: Vec<Case> = vec![
            (
                "contiguous registers make one request",
                vec![
                    point(Holding, 0, U16),
                    point(Holding, 1, F32),
                    point(Holding, 3, U64),
                ],
                0,
                100,
                vec![(Holding, 0, 7, vec![0, 1, 2])],
            ),
            (
                "a gap within max_gap is read across",
                vec![point(Holding, 0, U16), point(Holding, 5, U16)],
                4,
                100,
                vec![(Holding, 0, 6, vec![0, 1])],
            ),
            (
                "a gap beyond max_gap splits",
                vec![point(Holding, 0, U16), point(Holding, 6, U16)],
                4,
                100,
                vec![(Holding, 0, 1, vec![0]), (Holding, 6, 1, vec![1])],
            ),
            (
                "max_count splits, a wide value is never cut",
                vec![
                    point(Holding, 0, F32),
                    point(Holding, 2, F32),
                    point(Holding, 4, F32),
                ],
                0,
                5,
                vec![(Holding, 0, 4, vec![0, 1]), (Holding, 4, 2, vec![2])],
            ),
            (
                "tables never merge, and come out in table order",
                vec![
                    point(Input, 0, U16),
                    point(Holding, 1, U16),
                    point(Holding, 0, U16),
                ],
                10,
                100,
                vec![(Holding, 0, 2, vec![2, 1]), (Input, 0, 1, vec![0])],
            ),
            (
                "bits of one register share it",
                vec![
                    point(Holding, 7, Bit(0)),
                    point(Holding, 7, Bit(3)),
                    point(Holding, 8, U16),
                ],
                0,
                100,
                vec![(Holding, 7, 2, vec![0, 1, 2])],
            ),
            (
                "coils merge by bit address",
                vec![
                    point(Coil, 0, Bool),
                    point(Coil, 3, Bool),
                    point(Coil, 40, Bool),
                ],
                8,
                100,
                vec![(Coil, 0, 4, vec![0, 1]), (Coil, 40, 1, vec![2])],
            ),
            (
                "the last register of the table does not wrap",
                vec![point(Holding, 65534, U16), point(Holding, 65535, U16)],
                0,
                100,
                vec![(Holding, 65534, 2, vec![0, 1])],
            ),
            (
                "unsorted input is sorted by address",
                vec![
                    point(Holding, 10, U16),
                    point(Holding, 0, U16),
                    point(Holding, 5, U16),
                ],
                5,
                100,
                vec![(Holding, 0, 11, vec![1, 2, 0])],
            ),
            (
                "a max_count of 125 holds a 125-register string",
                vec![point(Holding, 0, Text(125)), point(Holding, 125, U16)],
                0,
                125,
                vec![(Holding, 0, 125, vec![0]), (Holding, 125, 1, vec![1])],
            ),
            ("nothing to read", vec![], 0, 100, vec![]),
        ];
        for (name, points, gap, count, expected) in cases {
            assert_eq!(plan(&points, gap, count), expected, "{name}");
        }
    }
}
