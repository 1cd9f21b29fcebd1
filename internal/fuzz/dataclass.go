package fuzz

import (
	"regexp"
	"strings"
)

// The built-in data classes. The governance data-class catalogue (issue
// 14) does not exist yet; until it does, these three are the set.
const (
	ClassEmail      = "email"
	ClassCardNumber = "card-number"
	ClassUSSSN      = "us-ssn"
)

// DataClasses lists the built-in classes.
func DataClasses() []string { return []string{ClassEmail, ClassCardNumber, ClassUSSSN} }

type dataValue struct{ class, value string }

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}`)
	// 13 to 19 digits, optionally grouped by single spaces or dashes, not
	// part of a longer number.
	cardRE = regexp.MustCompile(`(?:^|[^0-9.\-])((?:\d[ \-]?){12,18}\d)(?:$|[^0-9.\-])`)
	ssnRE  = regexp.MustCompile(`(?:^|[^0-9\-])(\d{3})-(\d{2})-(\d{4})(?:$|[^0-9\-])`)
)

// findDataClasses returns the data-class values in a response body, each
// value once.
func findDataClasses(body []byte) []dataValue {
	var out []dataValue
	seen := map[dataValue]bool{}
	add := func(d dataValue) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, m := range emailRE.FindAll(body, 20) {
		add(dataValue{ClassEmail, string(m)})
	}
	for _, m := range cardRE.FindAllSubmatch(body, 20) {
		digits := strings.NewReplacer(" ", "", "-", "").Replace(string(m[1]))
		if len(digits) >= 13 && len(digits) <= 19 && luhn(digits) && cardPrefix(digits) && !uniform(digits) {
			add(dataValue{ClassCardNumber, string(m[1])})
		}
	}
	for _, m := range ssnRE.FindAllSubmatch(body, 20) {
		area, group, serial := string(m[1]), string(m[2]), string(m[3])
		if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
			continue // never issued
		}
		add(dataValue{ClassUSSSN, area + "-" + group + "-" + serial})
	}
	return out
}

// luhn reports whether the digits pass the Luhn check.
func luhn(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// uniform is a run of one digit (000...0 passes Luhn but is no card).
func uniform(digits string) bool {
	return strings.Count(digits, digits[:1]) == len(digits)
}

// redact keeps the first four characters of a value.
func redact(v string) string {
	r := []rune(v)
	if len(r) <= 4 {
		return strings.Repeat("*", len(r))
	}
	return string(r[:4]) + strings.Repeat("*", len(r)-4)
}

// cardPrefix reports whether the number starts as the card networks'
// numbers do (Visa, Mastercard, American Express, Discover, JCB, Diners),
// so that a millisecond timestamp that happens to pass Luhn is no card.
func cardPrefix(d string) bool {
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p4 := p2*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	switch {
	case d[0] == '4':
		return len(d) == 13 || len(d) == 16 || len(d) == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		return len(d) == 16
	case p2 == 34 || p2 == 37:
		return len(d) == 15
	case p4 == 6011, p2 == 65, p4/10 >= 644 && p4/10 <= 649, p2 == 35:
		return len(d) >= 16
	case p2 == 36 || p2 == 38 || (p4/10 >= 300 && p4/10 <= 305):
		return len(d) >= 14
	}
	return false
}
