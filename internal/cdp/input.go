package cdp

import (
	"context"
	"fmt"
)

// Fill puts text into the form field sel as a user would: an input's text is
// selected and typed over (Input.insertText); a select gets the option whose
// value is text, with a change event; an empty text clears the field.
func (c *Client) Fill(ctx context.Context, sel, text string) error {
	var kind string
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return '';
		e.scrollIntoView({block: 'center'}); e.focus();
		if (e.tagName === 'SELECT') {
			if (![...e.options].some(o => o.value === %q)) return 'no-option';
			e.value = %q; e.dispatchEvent(new Event('change', {bubbles: true})); return 'select';
		}
		if (%q === '') { e.value = ''; e.dispatchEvent(new Event('input', {bubbles: true})); return 'select'; }
		e.select(); return 'input'; })()`, sel, text, text, text)
	if err := c.Eval(ctx, js, &kind); err != nil {
		return fmt.Errorf("fill %s: %w", sel, err)
	}
	switch kind {
	case "":
		return fmt.Errorf("fill %s: no such element on the page", sel)
	case "no-option":
		return fmt.Errorf("fill %s: no option %q", sel, text)
	case "select":
		return nil
	}
	if err := c.Call(ctx, "Input.insertText", map[string]any{"text": text}, nil); err != nil {
		return fmt.Errorf("fill %s: %w", sel, err)
	}
	return nil
}
