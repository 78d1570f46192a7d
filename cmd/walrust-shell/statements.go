package main

import "strings"

// splitter cuts SQL text into statements. Text is fed to it line by line; a
// statement ends at a ';' outside string literals, quoted identifiers and
// comments. In CREATE TRIGGER the ';' after each body statement does not
// end it: only "END;" does.
type splitter struct {
	buf     strings.Builder // text of the statement in progress
	state   lexState
	content bool // buf holds something besides blanks and comments
	line    int  // the line the statement in progress started on
	words   []string
	last    string // the last keyword-like word, upper-cased
	word    strings.Builder
}

type lexState int

const (
	lexNormal       lexState = iota
	lexSingle                // '...'
	lexDouble                // "..."
	lexBacktick              // `...`
	lexBracket               // [...]
	lexLineComment           // -- ...
	lexBlockComment          // /* ... */
)

// stmt is one complete statement and the line it started on.
type stmt struct {
	sql  string
	line int
}

// feed adds one line (without its newline) that is line number lineNo of
// the input, and returns the statements it completes.
func (s *splitter) feed(text string, lineNo int) []stmt {
	var out []stmt
	if !s.content && s.state == lexNormal {
		s.line = lineNo
	}
	text += "\n"
	for i := 0; i < len(text); i++ {
		c := text[i]
		s.buf.WriteByte(c)
		switch s.state {
		case lexNormal:
			if isWordByte(c) {
				s.word.WriteByte(c)
				s.content = true
				continue
			}
			s.endWord()
			switch c {
			case '\'':
				s.state, s.content = lexSingle, true
			case '"':
				s.state, s.content = lexDouble, true
			case '`':
				s.state, s.content = lexBacktick, true
			case '[':
				s.state, s.content = lexBracket, true
			case '-':
				if i+1 < len(text) && text[i+1] == '-' {
					s.state = lexLineComment
				} else {
					s.content = true
				}
			case '/':
				if i+1 < len(text) && text[i+1] == '*' {
					s.buf.WriteByte('*')
					i++
					s.state = lexBlockComment
				} else {
					s.content = true
				}
			case ';':
				if s.inTrigger() && s.last != "END" {
					continue
				}
				if s.content {
					out = append(out, stmt{sql: strings.TrimSpace(s.buf.String()), line: s.line})
				}
				s.reset()
				s.line = lineNo
			case ' ', '\t', '\n', '\r', '\f', '\v':
			default:
				s.content = true
			}
		case lexSingle:
			if c == '\'' {
				s.state = lexNormal // a doubled '' reopens at once
			}
		case lexDouble:
			if c == '"' {
				s.state = lexNormal
			}
		case lexBacktick:
			if c == '`' {
				s.state = lexNormal
			}
		case lexBracket:
			if c == ']' {
				s.state = lexNormal
			}
		case lexLineComment:
			if c == '\n' {
				s.state = lexNormal
			}
		case lexBlockComment:
			if c == '*' && i+1 < len(text) && text[i+1] == '/' {
				s.buf.WriteByte('/')
				i++
				s.state = lexNormal
			}
		}
	}
	if !s.content && s.state == lexNormal {
		// Only blanks and comments so far: nothing is pending.
		s.reset()
	}
	return out
}

// pending reports whether a statement has begun and not ended.
func (s *splitter) pending() bool { return s.content || s.state != lexNormal }

// flush returns what is left at the end of the input as a last statement
// (SQLite will say if it is incomplete).
func (s *splitter) flush() (stmt, bool) {
	defer s.reset()
	if !s.content {
		return stmt{}, false
	}
	return stmt{sql: strings.TrimSpace(s.buf.String()), line: s.line}, true
}

func (s *splitter) reset() {
	s.buf.Reset()
	s.word.Reset()
	s.state = lexNormal
	s.content = false
	s.words = s.words[:0]
	s.last = ""
}

func (s *splitter) endWord() {
	if s.word.Len() == 0 {
		return
	}
	w := strings.ToUpper(s.word.String())
	s.word.Reset()
	s.last = w
	if len(s.words) < 3 {
		s.words = append(s.words, w)
	}
}

// inTrigger reports whether the statement is CREATE [TEMP] TRIGGER.
func (s *splitter) inTrigger() bool {
	w := s.words
	if len(w) < 2 || w[0] != "CREATE" {
		return false
	}
	if w[1] == "TEMP" || w[1] == "TEMPORARY" {
		return len(w) > 2 && w[2] == "TRIGGER"
	}
	return w[1] == "TRIGGER"
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
