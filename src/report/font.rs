//! A tiny 3x5 bitmap font for captions on PNG reports (no font files needed).

/// 3x5 pixel glyphs for the few characters the captions use.
pub fn glyph(c: char) -> [&'static str; 5] {
    match c {
        '0' => ["###", "#.#", "#.#", "#.#", "###"],
        '1' => [".#.", "##.", ".#.", ".#.", "###"],
        '2' => ["###", "..#", "###", "#..", "###"],
        '3' => ["###", "..#", "###", "..#", "###"],
        '4' => ["#.#", "#.#", "###", "..#", "..#"],
        '5' => ["###", "#..", "###", "..#", "###"],
        '6' => ["###", "#..", "###", "#.#", "###"],
        '7' => ["###", "..#", "..#", "..#", "..#"],
        '8' => ["###", "#.#", "###", "#.#", "###"],
        '9' => ["###", "#.#", "###", "..#", "###"],
        '.' => ["...", "...", "...", "...", ".#."],
        '=' => ["...", "###", "...", "###", "..."],
        '-' => ["...", "...", "###", "...", "..."],
        ':' => ["...", ".#.", "...", ".#.", "..."],
        '%' => ["#.#", "..#", ".#.", "#..", "#.#"],
        '(' => [".#.", "#..", "#..", "#..", ".#."],
        ')' => [".#.", "..#", "..#", "..#", ".#."],
        '+' => ["...", ".#.", "###", ".#.", "..."],
        'F' => ["###", "#..", "##.", "#..", "#.."],
        'G' => ["###", "#..", "#.#", "#.#", "###"],
        'H' => ["#.#", "#.#", "###", "#.#", "#.#"],
        'J' => ["..#", "..#", "..#", "#.#", "###"],
        'K' => ["#.#", "#.#", "##.", "#.#", "#.#"],
        'Q' => ["###", "#.#", "#.#", "###", "..#"],
        'Y' => ["#.#", "#.#", ".#.", ".#.", ".#."],
        'Z' => ["###", "..#", ".#.", "#..", "###"],
        'A' => ["###", "#.#", "###", "#.#", "#.#"],
        'B' => ["##.", "#.#", "##.", "#.#", "##."],
        'C' => ["###", "#..", "#..", "#..", "###"],
        'D' => ["##.", "#.#", "#.#", "#.#", "##."],
        'E' => ["###", "#..", "##.", "#..", "###"],
        'I' => ["###", ".#.", ".#.", ".#.", "###"],
        'L' => ["#..", "#..", "#..", "#..", "###"],
        'M' => ["#.#", "###", "###", "#.#", "#.#"],
        'N' => ["##.", "#.#", "#.#", "#.#", "#.#"],
        'O' => ["###", "#.#", "#.#", "#.#", "###"],
        'P' => ["###", "#.#", "###", "#..", "#.."],
        'R' => ["##.", "#.#", "##.", "#.#", "#.#"],
        'S' => ["###", "#..", "###", "..#", "###"],
        'T' => ["###", ".#.", ".#.", ".#.", ".#."],
        'U' => ["#.#", "#.#", "#.#", "#.#", "###"],
        'V' => ["#.#", "#.#", "#.#", "#.#", ".#."],
        'W' => ["#.#", "#.#", "###", "###", "#.#"],
        'X' => ["#.#", "#.#", ".#.", "#.#", "#.#"],
        _ => ["...", "...", "...", "...", "..."],
    }
}

/// Draws `text` (upper-cased) at (x, y) with pixels of `scale`, white.
pub fn draw_text(img: &mut image::RgbImage, text: &str, x: u32, y: u32, scale: u32) {
    draw_text_color(img, text, x, y, scale, [255, 255, 255]);
}

/// Draws `text` in a given colour.
pub fn draw_text_color(img: &mut image::RgbImage, text: &str, x: u32, y: u32, scale: u32, color: [u8; 3]) {
    for (k, c) in text.chars().enumerate() {
        let g = glyph(c.to_ascii_uppercase());
        for (row, line) in g.iter().enumerate() {
            for (col, ch) in line.chars().enumerate() {
                if ch != '#' {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = x + (k as u32 * 4 + col as u32) * scale + dx;
                        let py = y + row as u32 * scale + dy;
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, image::Rgb(color));
                        }
                    }
                }
            }
        }
    }
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 4 * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_are_three_by_five_and_text_is_drawn() {
        for c in "0123456789.=-:%()+ABCDEFGHIJKLMNOPQRSTUVWXYZ".chars() {
            assert!(glyph(c).iter().all(|r| r.len() == 3), "{c}");
        }
        let mut img = image::RgbImage::new(40, 10);
        draw_text(&mut img, "L=1", 0, 0, 1);
        let lit = img.pixels().filter(|p| p.0 == [255, 255, 255]).count();
        // L: 7 pixels, =: 6, 1: 8.
        assert_eq!(lit, 21);
    }
}
