"""Fonts embedded in signature stamps: Liberation Serif (metric-compatible with Times New Roman,
SIL OFL 1.1, see LICENSE-LiberationFonts.txt), as Decree 30/2020 Annex I asks for stamp text."""

from pathlib import Path

FONT_DIR = Path(__file__).resolve().parent
SERIF_REGULAR = FONT_DIR / "LiberationSerif-Regular.ttf"
SERIF_BOLD = FONT_DIR / "LiberationSerif-Bold.ttf"
