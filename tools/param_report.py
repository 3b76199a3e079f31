from protune_mm.cli.param_report import main

if __name__ == '__main__':
    main()
