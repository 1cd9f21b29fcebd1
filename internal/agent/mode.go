package agent

import "fmt"

// Mode is what the agent does about drift.
type Mode string

// The modes.
const (
	// ModeOff watches nothing.
	ModeOff Mode = "off"
	// ModeDetect lets every exec run and reports drift.
	ModeDetect Mode = "detect"
	// ModePrevent refuses a drifted exec with EPERM and reports it.
	ModePrevent Mode = "prevent"
)

// ParseMode reads a mode name strictly.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeOff, ModeDetect, ModePrevent:
		return m, nil
	}
	return "", fmt.Errorf("parsing mode %q: want off, detect or prevent", s)
}
