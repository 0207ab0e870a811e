import Dispatch
import Foundation

/// Latencies of one loop and its rate.
struct Sample {
    var p50: Double
    var p99: Double
    var rate: Double

    /// From per-operation durations in seconds and the wall time the whole loop took.
    init(durations: [Double], wall: Double) {
        let sorted = durations.sorted()
        p50 = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
        rate = wall > 0 ? Double(durations.count) / wall : 0
    }
}

/// Monotonic seconds.
func now() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}

func us(_ seconds: Double) -> String { String(format: "%.0f µs", seconds * 1e6) }
func rate(_ perSecond: Double) -> String { String(format: "%.0f/s", perSecond) }
func mbps(_ bytesPerSecond: Double) -> String { String(format: "%.0f MB/s", bytesPerSecond / 1e6) }
func percent(_ ratio: Double) -> String { String(format: "%.0f%%", ratio * 100) }

/// A plain-text table with aligned columns.
struct Table {
    var rows: [[String]]

    init(header: [String]) { rows = [header] }

    mutating func add(_ cells: String...) { rows.append(cells) }

    func print() {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for (index, row) in rows.enumerated() {
            let line = row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
            Swift.print(line.joined(separator: " | "))
            if index == 0 { Swift.print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "-|-")) }
        }
    }
}
