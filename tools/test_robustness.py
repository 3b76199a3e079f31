from protune_mm.cli.robustness import main

if __name__ == '__main__':
    main()
